#include "kube/config.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace aad::kube {

namespace fs = std::filesystem;

namespace {

std::string read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(what + " " + path + ": cannot read file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string resolve(const std::string& base_dir, const std::string& p) {
  if (p.empty() || fs::path(p).is_absolute() || base_dir.empty()) return p;
  return (fs::path(base_dir) / p).string();
}

std::string str(const YAML::Node& n, const char* key) {
  auto v = n[key];
  if (!v || v.IsNull()) return {};
  if (!v.IsScalar()) throw ConfigError(std::string("kubeconfig: field ") + key + " must be a string");
  return v.as<std::string>();
}

YAML::Node find_named(const YAML::Node& root, const char* list, const std::string& name, const char* inner) {
  auto l = root[list];
  if (l && !l.IsSequence()) throw ConfigError(std::string("kubeconfig: ") + list + " must be a list");
  if (l)
    for (const auto& item : l)
      if (item["name"] && item["name"].as<std::string>() == name) {
        auto body = item[inner];
        if (!body) return YAML::Node(YAML::NodeType::Map);
        return body;
      }
  throw ConfigError(std::string("kubeconfig: ") + inner + " \"" + name + "\" not found in " + list);
}

}  // namespace

std::string base64_decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r' || c == ' ') continue;
    int v = val(c);
    if (v < 0) throw ConfigError("invalid base64 data");
    buf = (buf << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buf >> bits) & 0xff));
    }
  }
  return out;
}

std::string base64_encode(std::string_view in) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned n = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += {tbl[(n >> 18) & 63], tbl[(n >> 12) & 63], tbl[(n >> 6) & 63], tbl[n & 63]};
  }
  if (i + 1 == in.size()) {
    unsigned n = static_cast<unsigned char>(in[i]) << 16;
    out += {tbl[(n >> 18) & 63], tbl[(n >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    unsigned n = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {tbl[(n >> 18) & 63], tbl[(n >> 12) & 63], tbl[(n >> 6) & 63], '='};
  }
  return out;
}

Config parse_kubeconfig(const std::string& text, const std::string& base_dir, const std::string& context) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(std::string("kubeconfig: invalid YAML: ") + e.what());
  }
  if (!root.IsMap()) throw ConfigError("kubeconfig: not a YAML mapping");
  try {
    std::string ctx_name = context.empty() ? str(root, "current-context") : context;
    if (ctx_name.empty()) throw ConfigError("kubeconfig: no current-context and no context given");
    auto ctx = find_named(root, "contexts", ctx_name, "context");
    std::string cluster_name = str(ctx, "cluster"), user_name = str(ctx, "user");
    if (cluster_name.empty()) throw ConfigError("kubeconfig: context \"" + ctx_name + "\" names no cluster");
    auto cluster = find_named(root, "clusters", cluster_name, "cluster");
    Config c;
    c.source = "kubeconfig context " + ctx_name;
    c.server = str(cluster, "server");
    if (c.server.empty()) throw ConfigError("kubeconfig: cluster \"" + cluster_name + "\" has no server");
    while (!c.server.empty() && c.server.back() == '/') c.server.pop_back();
    if (c.server.rfind("https://", 0) != 0 && c.server.rfind("http://", 0) != 0)
      throw ConfigError("kubeconfig: cluster \"" + cluster_name + "\" server must be an http(s) URL: " + c.server);
    if (auto ns = str(ctx, "namespace"); !ns.empty()) c.ns = ns;
    auto insecure = cluster["insecure-skip-tls-verify"];
    c.tls.insecure_skip_verify = insecure && insecure.IsScalar() && insecure.as<bool>();
    if (auto d = str(cluster, "certificate-authority-data"); !d.empty()) {
      c.tls.ca_pem = base64_decode(d);
    } else if (auto f = str(cluster, "certificate-authority"); !f.empty()) {
      c.tls.ca_pem = read_file(resolve(base_dir, f), "certificate-authority");
    }
    if (!user_name.empty()) {
      auto user = find_named(root, "users", user_name, "user");
      if (auto d = str(user, "client-certificate-data"); !d.empty()) c.tls.cert_pem = base64_decode(d);
      else if (auto f = str(user, "client-certificate"); !f.empty())
        c.tls.cert_pem = read_file(resolve(base_dir, f), "client-certificate");
      if (auto d = str(user, "client-key-data"); !d.empty()) c.tls.key_pem = base64_decode(d);
      else if (auto f = str(user, "client-key"); !f.empty())
        c.tls.key_pem = read_file(resolve(base_dir, f), "client-key");
      if (c.tls.cert_pem.empty() != c.tls.key_pem.empty())
        throw ConfigError("kubeconfig: user \"" + user_name + "\" has a client certificate without key or a key without certificate");
      c.token = str(user, "token");
      if (auto f = str(user, "tokenFile"); !f.empty() && c.token.empty()) {
        c.token_file = resolve(base_dir, f);
        read_file(c.token_file, "tokenFile");  // fail now, not on the first request
      }
      if (user["exec"] || user["auth-provider"])
        if (c.token.empty() && c.token_file.empty() && c.tls.cert_pem.empty())
          throw ConfigError("kubeconfig: user \"" + user_name + "\" uses exec/auth-provider, which is not supported");
    }
    return c;
  } catch (const YAML::Exception& e) {
    throw ConfigError(std::string("kubeconfig: ") + e.what());
  }
}

Config load_kubeconfig(const std::string& path, const std::string& context) {
  auto text = read_file(path, "kubeconfig");
  auto c = parse_kubeconfig(text, fs::path(path).parent_path().string(), context);
  c.source = "kubeconfig " + path + " " + c.source.substr(std::string("kubeconfig ").size());
  return c;
}

Config in_cluster(const InClusterOptions& o) {
  auto env = [&](const std::string& k) -> std::string {
    if (o.getenv) return o.getenv(k).value_or("");
    const char* v = std::getenv(k.c_str());
    return v ? v : "";
  };
  auto host = env("KUBERNETES_SERVICE_HOST"), port = env("KUBERNETES_SERVICE_PORT");
  if (host.empty() || port.empty())
    throw ConfigError("in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
  Config c;
  c.source = "in-cluster";
  bool v6 = host.find(':') != std::string::npos;
  c.server = "https://" + (v6 ? "[" + host + "]" : host) + ":" + port;
  c.token_file = o.dir + "/token";
  if (read_file(c.token_file, "in-cluster: service account token").empty())
    throw ConfigError("in-cluster: service account token " + c.token_file + " is empty");
  c.tls.ca_pem = read_file(o.dir + "/ca.crt", "in-cluster: service account CA");
  std::error_code ec;
  if (fs::exists(o.dir + "/namespace", ec)) {
    auto ns = read_file(o.dir + "/namespace", "in-cluster: namespace");
    while (!ns.empty() && (ns.back() == '\n' || ns.back() == ' ')) ns.pop_back();
    if (!ns.empty()) c.ns = ns;
  }
  return c;
}

Config load(const std::string& flag, const std::string& context) {
  if (!flag.empty()) return load_kubeconfig(flag, context);
  if (const char* h = std::getenv("KUBERNETES_SERVICE_HOST"); h && *h) return in_cluster();
  if (const char* k = std::getenv("KUBECONFIG"); k && *k) {
    std::string first(k);
    first = first.substr(0, first.find(':'));
    return load_kubeconfig(first, context);
  }
  const char* home = std::getenv("HOME");
  if (home && fs::exists(std::string(home) + "/.kube/config"))
    return load_kubeconfig(std::string(home) + "/.kube/config", context);
  throw ConfigError("no kubeconfig given (--kubeconfig), not in a cluster, no $KUBECONFIG or ~/.kube/config");
}

}  // namespace aad::kube
