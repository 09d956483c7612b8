#pragma once
// A Prometheus text-format (0.0.4) registry: counters, gauges and histograms with labels.
// Single-threaded by design: everything runs on the one io_context thread.
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace aad::metrics {

using LabelValues = std::vector<std::string>;

class Counter {
 public:
  void inc(double by = 1) { value_ += by; }
  double value() const { return value_; }

 private:
  double value_ = 0;
};

class Gauge {
 public:
  void set(double v) { value_ = v; }
  void add(double by) { value_ += by; }
  double value() const { return value_; }

 private:
  double value_ = 0;
};

class Histogram {
 public:
  explicit Histogram(const std::vector<double>* bounds) : bounds_(bounds), counts_(bounds->size()) {}
  void observe(double v);
  double sum() const { return sum_; }
  std::uint64_t count() const { return count_; }
  const std::vector<double>& bounds() const { return *bounds_; }
  // Cumulative count for each bound (le), in bound order.
  std::vector<std::uint64_t> cumulative() const;

 private:
  const std::vector<double>* bounds_;
  std::vector<std::uint64_t> counts_;  // per bucket, not cumulative
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

enum class Kind { counter, gauge, histogram };

// All series of one metric name.
template <typename T>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> labels,
         std::vector<double> bounds = {})
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)),
        bounds_(std::move(bounds)) {}

  // The series for these label values (created at zero on first use).
  T& with(const LabelValues& values);
  T& get() { return with({}); }

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& labels() const { return labels_; }
  const std::map<LabelValues, std::unique_ptr<T>>& series() const { return series_; }

 private:
  std::string name_, help_;
  std::vector<std::string> labels_;
  std::vector<double> bounds_;
  std::map<LabelValues, std::unique_ptr<T>> series_;
};

class Registry {
 public:
  Family<Counter>& counter(std::string name, std::string help, std::vector<std::string> labels = {});
  Family<Gauge>& gauge(std::string name, std::string help, std::vector<std::string> labels = {});
  Family<Histogram>& histogram(std::string name, std::string help, std::vector<double> bounds,
                               std::vector<std::string> labels = {});

  // The whole registry in the Prometheus text exposition format.
  std::string render() const;

 private:
  void claim(const std::string& name);
  std::map<std::string, std::unique_ptr<Family<Counter>>> counters_;
  std::map<std::string, std::unique_ptr<Family<Gauge>>> gauges_;
  std::map<std::string, std::unique_ptr<Family<Histogram>>> histograms_;
  std::map<std::string, Kind> names_;
};

// Buckets growing geometrically: start, start*factor, ... (count values).
std::vector<double> exponential_buckets(double start, double factor, int count);

// Escaping rules of the text format.
std::string escape_label_value(std::string_view v);
std::string escape_help(std::string_view v);
std::string format_value(double v);

}  // namespace aad::metrics
