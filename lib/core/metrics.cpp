#include "core/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <regex>
#include <stdexcept>

namespace aad::metrics {

void Histogram::observe(double v) {
  auto it = std::lower_bound(bounds_->begin(), bounds_->end(), v);  // first bound >= v (le)
  if (it != bounds_->end()) ++counts_[static_cast<std::size_t>(it - bounds_->begin())];
  sum_ += v;
  ++count_;
}

std::vector<std::uint64_t> Histogram::cumulative() const {
  std::vector<std::uint64_t> out(counts_.size());
  std::uint64_t running = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) out[i] = running += counts_[i];
  return out;
}

template <typename T>
T& Family<T>::with(const LabelValues& values) {
  if (values.size() != labels_.size())
    throw std::logic_error(fmt::format("metric {}: {} label values for {} labels", name_,
                                       values.size(), labels_.size()));
  auto& slot = series_[values];
  if (!slot) {
    if constexpr (std::is_same_v<T, Histogram>)
      slot = std::make_unique<T>(&bounds_);
    else
      slot = std::make_unique<T>();
  }
  return *slot;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

void Registry::claim(const std::string& name) {
  static const std::regex valid("[a-zA-Z_:][a-zA-Z0-9_:]*");
  if (!std::regex_match(name, valid)) throw std::logic_error("invalid metric name: " + name);
  if (names_.count(name)) throw std::logic_error("metric registered twice: " + name);
}

Family<Counter>& Registry::counter(std::string name, std::string help, std::vector<std::string> labels) {
  claim(name);
  names_[name] = Kind::counter;
  auto& f = counters_[name];
  f = std::make_unique<Family<Counter>>(name, std::move(help), std::move(labels));
  return *f;
}

Family<Gauge>& Registry::gauge(std::string name, std::string help, std::vector<std::string> labels) {
  claim(name);
  names_[name] = Kind::gauge;
  auto& f = gauges_[name];
  f = std::make_unique<Family<Gauge>>(name, std::move(help), std::move(labels));
  return *f;
}

Family<Histogram>& Registry::histogram(std::string name, std::string help, std::vector<double> bounds,
                                       std::vector<std::string> labels) {
  claim(name);
  if (!std::is_sorted(bounds.begin(), bounds.end()) ||
      std::adjacent_find(bounds.begin(), bounds.end()) != bounds.end())
    throw std::logic_error("histogram buckets must increase: " + name);
  names_[name] = Kind::histogram;
  auto& f = histograms_[name];
  f = std::make_unique<Family<Histogram>>(name, std::move(help), std::move(labels), std::move(bounds));
  return *f;
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

namespace {

std::string label_block(const std::vector<std::string>& names, const LabelValues& values,
                        std::string_view extra_name = {}, std::string_view extra_value = {}) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i)
    out += fmt::format("{}{}=\"{}\"", out.empty() ? "" : ",", names[i], escape_label_value(values[i]));
  if (!extra_name.empty())
    out += fmt::format("{}{}=\"{}\"", out.empty() ? "" : ",", extra_name, extra_value);
  return out.empty() ? "" : "{" + out + "}";
}

template <typename F>
void header(std::string& out, const F& f, std::string_view type) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name(), escape_help(f.help()), f.name(), type);
}

}  // namespace

std::string Registry::render() const {
  std::string out;
  for (const auto& [name, kind] : names_) {
    switch (kind) {
      case Kind::counter: {
        const auto& f = *counters_.at(name);
        header(out, f, "counter");
        for (const auto& [values, c] : f.series())
          out += fmt::format("{}{} {}\n", name, label_block(f.labels(), values), format_value(c->value()));
        break;
      }
      case Kind::gauge: {
        const auto& f = *gauges_.at(name);
        header(out, f, "gauge");
        for (const auto& [values, g] : f.series())
          out += fmt::format("{}{} {}\n", name, label_block(f.labels(), values), format_value(g->value()));
        break;
      }
      case Kind::histogram: {
        const auto& f = *histograms_.at(name);
        header(out, f, "histogram");
        for (const auto& [values, h] : f.series()) {
          auto cum = h->cumulative();
          for (std::size_t i = 0; i < cum.size(); ++i)
            out += fmt::format("{}_bucket{} {}\n", name,
                               label_block(f.labels(), values, "le", format_value(h->bounds()[i])), cum[i]);
          out += fmt::format("{}_bucket{} {}\n", name, label_block(f.labels(), values, "le", "+Inf"), h->count());
          out += fmt::format("{}_sum{} {}\n", name, label_block(f.labels(), values), format_value(h->sum()));
          out += fmt::format("{}_count{} {}\n", name, label_block(f.labels(), values), h->count());
        }
        break;
      }
    }
  }
  return out;
}

std::vector<double> exponential_buckets(double start, double factor, int count) {
  std::vector<double> out;
  for (int i = 0; i < count; ++i, start *= factor) out.push_back(start);
  return out;
}

}  // namespace aad::metrics
