#include "kube/client.hpp"

#include <fmt/format.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/http_client.hpp"
#include "core/http_stream.hpp"
#include "core/log.hpp"
#include "core/version.hpp"
#include "kube/rate.hpp"

namespace aad::kube {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

struct Client::Impl {
  std::shared_ptr<asio::ssl::context> ssl;
  std::unique_ptr<http::Client> http;
  TokenBucket bucket;
  std::string token;
  Clock::time_point token_read{};
  Impl(double qps, int burst) : bucket(qps, burst) {}
};

namespace {

asio::awaitable<void> sleep_for(Clock::duration d) {
  if (d <= Clock::duration::zero()) co_return;
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

boost::beast::http::verb verb_of(const std::string& m) {
  auto v = boost::beast::http::string_to_verb(m);
  if (v == boost::beast::http::verb::unknown) throw std::invalid_argument("unknown HTTP method " + m);
  return v;
}

Result<json::object> parse_object(const std::string& body) {
  boost::system::error_code ec;
  auto v = json::parse(body, ec);
  if (ec) return Error::decode("response is not JSON: " + ec.message());
  if (!v.is_object()) return Error::decode("response is not a JSON object");
  return std::move(v.get_object());
}

std::string meta_field(const json::object& o, const char* key) {
  auto* m = o.if_contains("metadata");
  if (!m || !m->is_object()) return {};
  auto* v = m->get_object().if_contains(key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

}  // namespace

std::string query_string(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [k, v] : params) {
    if (v.empty()) continue;
    q += q.empty() ? "?" : "&";
    q += k + "=" + url_escape(v);
  }
  return q;
}

Client::Client(asio::any_io_executor executor, Config config, ClientOptions options)
    : executor_(executor), config_(std::move(config)), options_(std::move(options)),
      impl_(std::make_unique<Impl>(options_.qps, options_.burst)) {
  user_agent_ = options_.user_agent.empty() ? std::string("aad-pod-identity/") + version::semver : options_.user_agent;
  if (!options_.user_agent_suffix.empty()) user_agent_ += " " + options_.user_agent_suffix;
  try {
    impl_->ssl = tls::make_client_context(config_.tls);
  } catch (const std::exception& e) {
    throw ConfigError(std::string("kubernetes TLS configuration (") + config_.source + "): " + e.what());
  }
  http::ClientOptions ho;
  ho.tls = config_.tls;
  ho.user_agent = user_agent_;
  impl_->http = std::make_unique<http::Client>(executor_, ho);
}

Client::~Client() = default;

std::string Client::bearer_token() {
  if (!config_.token.empty()) return config_.token;
  if (config_.token_file.empty()) return {};
  auto now = Clock::now();
  if (impl_->token.empty() || now - impl_->token_read >= options_.token_reload) {
    std::ifstream in(config_.token_file, std::ios::binary);
    if (in) {
      std::ostringstream ss;
      ss << in.rdbuf();
      auto t = ss.str();
      while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
      if (!t.empty()) {
        impl_->token = std::move(t);
        impl_->token_read = now;
      }
    } else if (!impl_->token.empty()) {
      log::warning("cannot re-read the token file; keeping the previous token", {{"file", config_.token_file}});
      impl_->token_read = now;
    }
  }
  return impl_->token;
}

asio::awaitable<Result<RawResponse>> Client::request(std::string method, std::string path, std::string body,
                                                     std::string content_type, CallOptions call) {
  auto verb = verb_of(method);
  bool idempotent = verb != boost::beast::http::verb::post && verb != boost::beast::http::verb::patch;
  auto delay = options_.retry_initial;
  for (int attempt = 0;; ++attempt) {
    if (!call.skip_rate_limit) co_await sleep_for(impl_->bucket.reserve(Clock::now()));
    http::ClientRequest req;
    req.method = verb;
    req.url = config_.server + path;
    req.timeout = call.timeout.value_or(options_.timeout);
    req.headers.emplace_back("Accept", "application/json");
    if (!body.empty()) req.headers.emplace_back("Content-Type", content_type);
    if (auto tok = bearer_token(); !tok.empty()) req.headers.emplace_back("Authorization", "Bearer " + tok);
    req.body = body;
    ++sent_;
    auto res = co_await impl_->http->send(std::move(req));
    std::chrono::milliseconds wait = delay;
    bool retry = false;
    Error err;
    if (!res) {
      err = Error::from_transport(res.error(), method + " " + config_.server + path);
      retry = idempotent;
    } else if (res->status >= 200 && res->status < 300) {
      co_return RawResponse{res->status, std::move(res->body)};
    } else {
      err = Error::from_response(res->status, res->body);
      auto retry_after = res->header("Retry-After");
      bool transient = res->status == 429 || res->status == 500 || res->status == 502 || res->status == 503 ||
                       res->status == 504;
      retry = transient && (idempotent || !retry_after.empty() || res->status == 429);
      if (!retry_after.empty()) wait = parse_retry_after(retry_after, delay, options_.retry_max);
    }
    if (!retry || attempt >= call.max_retries.value_or(options_.max_retries)) co_return err;
    log::debug(2, "retrying kubernetes request", {{"method", method}, {"path", path}, {"error", err.describe()},
                                                  {"waitMs", static_cast<long long>(wait.count())}});
    co_await sleep_for(wait);
    delay = std::min(options_.retry_max, delay * 2);
  }
}

asio::awaitable<Result<json::object>> Client::get(const Resource& r, std::string ns, std::string name) {
  auto res = co_await request("GET", r.path(ns, name));
  if (!res) co_return res.error();
  co_return parse_object(res->body);
}

asio::awaitable<Result<ObjectList>> Client::list_page(const Resource& r, std::string ns, ListOptions o) {
  std::string q = query_string({{"labelSelector", o.label_selector},
                                {"fieldSelector", o.field_selector},
                                {"limit", o.limit > 0 ? std::to_string(o.limit) : ""},
                                {"continue", o.continue_token},
                                {"resourceVersion", o.resource_version},
                                {"resourceVersionMatch", o.resource_version_match}});
  auto res = co_await request("GET", r.path(ns) + q);
  if (!res) co_return res.error();
  auto obj = parse_object(res->body);
  if (!obj) co_return obj.error();
  ObjectList out;
  out.resource_version = meta_field(*obj, "resourceVersion");
  out.continue_token = meta_field(*obj, "continue");
  if (auto* items = obj->if_contains("items"); items && items->is_array()) {
    for (auto& it : items->get_array()) {
      if (!it.is_object()) continue;
      auto& item = it.get_object();
      // Items of a list carry no apiVersion/kind; add them so they look like single objects.
      if (!item.contains("apiVersion")) item["apiVersion"] = r.api_version();
      if (!item.contains("kind")) item["kind"] = r.kind;
      out.items.push_back(std::move(item));
    }
  }
  co_return out;
}

asio::awaitable<Result<ObjectList>> Client::list(const Resource& r, std::string ns, ListOptions o) {
  ObjectList all;
  for (;;) {
    auto page = co_await list_page(r, ns, o);
    if (!page) co_return page.error();
    for (auto& it : page->items) all.items.push_back(std::move(it));
    all.resource_version = page->resource_version;
    if (page->continue_token.empty() || o.limit <= 0) break;
    o.continue_token = page->continue_token;
    o.resource_version.clear();
    o.resource_version_match.clear();
  }
  co_return all;
}

asio::awaitable<Result<json::object>> Client::create(const Resource& r, std::string ns, json::object obj) {
  if (!obj.contains("apiVersion")) obj["apiVersion"] = r.api_version();
  if (!obj.contains("kind")) obj["kind"] = r.kind;
  auto res = co_await request("POST", r.path(ns), json::serialize(obj));
  if (!res) co_return res.error();
  co_return parse_object(res->body);
}

asio::awaitable<Result<json::object>> Client::update(const Resource& r, json::object obj, std::string sub) {
  if (!obj.contains("apiVersion")) obj["apiVersion"] = r.api_version();
  if (!obj.contains("kind")) obj["kind"] = r.kind;
  auto name = meta_field(obj, "name");
  if (name.empty()) throw std::invalid_argument("kube::Client::update: object without metadata.name");
  auto res = co_await request("PUT", r.path(meta_field(obj, "namespace"), name, sub), json::serialize(obj));
  if (!res) co_return res.error();
  co_return parse_object(res->body);
}

asio::awaitable<Result<json::object>> Client::patch(const Resource& r, std::string ns, std::string name,
                                                    PatchType type, std::string body, std::string sub) {
  const char* ct = type == PatchType::merge ? "application/merge-patch+json"
                   : type == PatchType::json ? "application/json-patch+json"
                                             : "application/strategic-merge-patch+json";
  auto res = co_await request("PATCH", r.path(ns, name, sub), std::move(body), ct);
  if (!res) co_return res.error();
  co_return parse_object(res->body);
}

asio::awaitable<Result<void>> Client::remove(const Resource& r, std::string ns, std::string name, DeleteOptions o) {
  std::string body;
  json::object opts{{"apiVersion", "v1"}, {"kind", "DeleteOptions"}};
  if (!o.uid.empty() || !o.resource_version.empty()) {
    json::object p;
    if (!o.uid.empty()) p["uid"] = o.uid;
    if (!o.resource_version.empty()) p["resourceVersion"] = o.resource_version;
    opts["preconditions"] = std::move(p);
  }
  if (o.grace_period_seconds) opts["gracePeriodSeconds"] = *o.grace_period_seconds;
  if (!o.propagation_policy.empty()) opts["propagationPolicy"] = o.propagation_policy;
  if (opts.size() > 2) body = json::serialize(opts);
  auto res = co_await request("DELETE", r.path(ns, name), std::move(body));
  if (!res) co_return res.error();
  co_return Result<void>{};
}

asio::awaitable<Result<std::unique_ptr<http::Stream>>> Client::watch(const Resource& r, std::string ns,
                                                                      WatchOptions o) {
  std::string q = query_string({{"watch", "1"},
                                {"labelSelector", o.label_selector},
                                {"fieldSelector", o.field_selector},
                                {"resourceVersion", o.resource_version},
                                {"allowWatchBookmarks", o.allow_bookmarks ? "true" : ""},
                                {"timeoutSeconds", o.timeout_seconds > 0 ? std::to_string(o.timeout_seconds) : ""}});
  co_await sleep_for(impl_->bucket.reserve(Clock::now()));
  auto stream = std::make_unique<http::Stream>(executor_, impl_->ssl, config_.tls.insecure_skip_verify, user_agent_);
  http::ClientRequest req;
  req.url = config_.server + r.path(ns) + q;
  req.timeout = options_.timeout;
  req.headers.emplace_back("Accept", "application/json");
  if (auto tok = bearer_token(); !tok.empty()) req.headers.emplace_back("Authorization", "Bearer " + tok);
  ++sent_;
  auto status = co_await stream->open(std::move(req));
  if (!status) co_return Error::from_transport(status.error(), "watch " + r.resource);
  if (*status != 200) {
    auto body = co_await stream->read_all();
    co_return Error::from_response(*status, body ? *body : std::string());
  }
  // The server ends the watch after timeoutSeconds; allow a margin before calling it dead.
  stream->set_idle_timeout(std::chrono::seconds(o.timeout_seconds > 0 ? o.timeout_seconds + 60 : 0));
  co_return std::move(stream);
}

Result<WatchEvent> parse_watch_event(const std::string& line) {
  boost::system::error_code ec;
  auto v = json::parse(line, ec);
  if (ec || !v.is_object()) return Error::decode("watch event is not a JSON object");
  auto& o = v.get_object();
  auto* t = o.if_contains("type");
  auto* obj = o.if_contains("object");
  if (!t || !t->is_string() || !obj || !obj->is_object()) return Error::decode("watch event without type/object");
  return WatchEvent{std::string(t->get_string()), std::move(obj->get_object())};
}

}  // namespace aad::kube
