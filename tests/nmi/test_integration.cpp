// Suite nmi, integration part: the real engine against the real apiserver and the Azure
// emulator (see integration_env.hpp for how pods and their addresses are played).
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <thread>

#include "nmi/integration_env.hpp"

using namespace aad;
using namespace aad::test;
namespace json = boost::json;

namespace {

const std::string kToken = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net";

std::string str(const json::value& v, const char* key) { return std::string(v.as_object().at(key).as_string()); }

// The claims of a JWT access token (the emulator's tokens are real JWTs).
json::object claims(const std::string& jwt) {
  auto a = jwt.find('.'), b = jwt.find('.', a + 1);
  std::string part = jwt.substr(a + 1, b - a - 1);
  for (auto& c : part) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (part.size() % 4) part += '=';
  std::string out;
  int val = 0, bits = -8;
  for (unsigned char c : part) {
    if (c == '=') break;
    auto pos = std::string_view("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/").find(c);
    val = (val << 6) + static_cast<int>(pos);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return json::parse(out).as_object();
}

kube::AzureIdentity managed_identity(const std::string& ns, const std::string& name, const std::string& client,
                                     const std::string& resource_id) {
  kube::AzureIdentity id;
  id.meta.ns = ns;
  id.meta.name = name;
  id.type = 0;
  id.client_id = client;
  id.resource_id = resource_id;
  return id;
}

}  // namespace

TEST_CASE("standard mode: type 0 via IMDS, unbound pod 404 at once, isolation, proxy, /host/token") {
  IntegrationEnv env;
  auto ns = env.new_namespace("nmi-std");
  NmiProcess nmi(env.options("node-std"));
  auto ip_a = IntegrationEnv::next_ip(), ip_b = IntegrationEnv::next_ip(), ip_c = IntegrationEnv::next_ip();
  auto id1 = env.create_identity(managed_identity(ns, "mi-one", env.mi1_client, env.mi1_id));
  auto id2 = env.create_identity(managed_identity(ns, "mi-two", env.mi2_client, env.mi2_id));
  env.create_binding(ns, "b1", "mi-one", "sel-one");
  env.create_binding(ns, "b2", "mi-two", "sel-two");
  env.create_pod(ns, "pod-a", nmi.node(), ip_a, {{"aadpodidbinding", "sel-one"}});
  env.create_pod(ns, "pod-b", nmi.node(), ip_b, {{"aadpodidbinding", "sel-two"}});
  env.create_pod(ns, "pod-c", nmi.node(), ip_c, {{"app", "unbound"}});
  env.create_assigned(ns, "pod-a", nmi.node(), id1, "Assigned");
  env.create_assigned(ns, "pod-b", nmi.node(), id2, "Assigned");

  auto a = http_from(ip_a, nmi.port(), kToken);
  REQUIRE(a.status == 200);
  CHECK(a.headers[boost::beast::http::field::content_type] == "application/json");
  auto ta = str(a.json(), "access_token");
  CHECK(claims(ta).at("appid").as_string() == env.mi1_client);
  CHECK(str(a.json(), "resource") == "https://vault.azure.net");
  auto body = a.json();
  for (const auto& kv : body.as_object()) CHECK(kv.value().is_string());

  auto b = http_from(ip_b, nmi.port(), kToken + "&client_id=" + env.mi2_client);
  REQUIRE(b.status == 200);
  CHECK(claims(str(b.json(), "access_token")).at("appid").as_string() == env.mi2_client);

  // Synced caches: ready; no iptables in this process, so Active once synced.
  CHECK(nmi.ready());
  CHECK(nmi.active());
  auto metrics = nmi.metrics_text();
  CHECK_THAT(metrics, Catch::Contains("aadpodidentity_nmi_operations_duration_seconds_count{operation_type=\"/metadata/identity/oauth2/token\",status_code=\"200\",namespace=\"" + ns + "\",resource=\"https://vault.azure.net\"} 2"));
  CHECK_THAT(metrics, Catch::Contains("aadpodidentity_imds_operations_duration_seconds_count{operation_type=\"adal_token_msi_userassignedid\"} 2"));
  CHECK_THAT(metrics, Catch::Contains("aadpodidentity_nmi_token_cache_requests_total{result=\"miss\"} 2"));
  CHECK_THAT(metrics, Catch::Contains("\naadpodidentity_nmi_token_cache_evictions_total 0\n"));

  SECTION("pod A never obtains pod B's identity") {
    CHECK(http_from(ip_a, nmi.port(), kToken + "&client_id=" + env.mi2_client).status == 404);
    CHECK(http_from(ip_a, nmi.port(), kToken + "&msi_res_id=" + env.mi2_id).status == 404);
    CHECK(http_from(ip_a, nmi.port(), kToken + "&mi_res_id=" + env.mi2_id).status == 404);
    // Cached for A: still A's identity.
    auto again = http_from(ip_a, nmi.port(), kToken);
    CHECK(claims(str(again.json(), "access_token")).at("appid").as_string() == env.mi1_client);
  }
  SECTION("an unbound pod gets 404 at once; an unknown address 404 after a short wait") {
    auto c = http_from(ip_c, nmi.port(), kToken);  // a wait of 16 x 60 s would hit the socket timeout
    CHECK(c.status == 404);
    CHECK(str(c.json(), "error") == "identity_not_found");
    auto unknown = http_from(IntegrationEnv::next_ip(), nmi.port(), kToken);
    CHECK(unknown.status == 404);
    CHECK(str(unknown.json(), "error") == "pod_not_found");
  }
  SECTION("the Metadata header is required; the proxy round-trips other paths to IMDS") {
    auto no_header = http_from(ip_a, nmi.port(), kToken, {});
    CHECK(no_header.status == 400);
    CHECK(no_header.body == R"({"error":"invalid_request","error_description":"Required metadata header not specified"})");
    for (std::string path : {"/metadata/instance?api-version=2021-02-01", "/metadata/instance/compute/name?api-version=2021-02-01&format=text",
                             "/metadata/doesnotexist"}) {
      INFO(path);
      auto via_nmi = http_from(ip_a, nmi.port(), path);
      auto direct = http_to(env.emu.url(), path, {{"Metadata", "true"}});
      CHECK(via_nmi.status == direct.status);
      CHECK(via_nmi.body == direct.body);
      CHECK(via_nmi.headers[boost::beast::http::field::content_type] == direct.headers[boost::beast::http::field::content_type]);
      // HEAD: IMDS's status and header, its Content-Length included (the emulator answers HEAD
      // with a 405 whose body it does not send), and no body.
      auto head_via_nmi = http_from(ip_a, nmi.port(), path, {{"Metadata", "true"}}, boost::beast::http::verb::head);
      auto head_direct = http_to(env.emu.url(), path, {{"Metadata", "true"}}, boost::beast::http::verb::head);
      CHECK(head_via_nmi.status == head_direct.status);
      CHECK(head_via_nmi.body.empty());
      auto length = head_direct.headers[boost::beast::http::field::content_length];
      CHECK(length != "0");
      CHECK(head_via_nmi.headers[boost::beast::http::field::content_length] == length);
    }
    // A token path is never proxied, whatever the method.
    auto head_token = http_from(ip_a, nmi.port(), "/metadata/identity/oauth2/token/x", {{"Metadata", "true"}},
                                boost::beast::http::verb::head);
    CHECK(head_token.status == 400);
  }
  SECTION("/host/token for node processes") {
    auto h = http_from("127.0.0.1", nmi.port(), "/host/token/?resource=https://vault.azure.net",
                       {{"podname", "pod-b"}, {"podns", ns}});
    REQUIRE(h.status == 200);
    CHECK(str(h.json(), "clientid") == env.mi2_client);
    CHECK(claims(str(h.json().at("token"), "access_token")).at("appid").as_string() == env.mi2_client);
    auto remote = http_from(ip_a, nmi.port(), "/host/token/?resource=r", {{"podname", "pod-b"}, {"podns", ns}});
    CHECK(remote.status == 500);
  }
}

TEST_CASE("standard mode: a request waiting on Created is answered when MIC marks it Assigned") {
  IntegrationEnv env;
  auto ns = env.new_namespace("nmi-wait");
  NmiProcess nmi(env.options("node-wait"));
  auto ip = IntegrationEnv::next_ip();
  auto id = env.create_identity(managed_identity(ns, "mi-one", env.mi1_client, env.mi1_id));
  env.create_binding(ns, "b", "mi-one", "sel");
  env.create_pod(ns, "pod", nmi.node(), ip, {{"aadpodidbinding", "sel"}});
  auto aai = env.create_assigned(ns, "pod", nmi.node(), id, "Created");
  auto pending = std::async(std::launch::async, [&] { return http_from(ip, nmi.port(), kToken); });
  // The request is held (the budget is 20 x 60 s); the status change must wake it.
  CHECK(pending.wait_for(std::chrono::milliseconds(1500)) == std::future_status::timeout);
  env.set_assigned_status(aai, "Assigned");
  auto r = pending.get();
  CHECK(r.status == 200);
  CHECK(claims(str(r.json(), "access_token")).at("appid").as_string() == env.mi1_client);
}

TEST_CASE("service principals: type 1 with a Secret (multi-tenant array), type 2 with a certificate") {
  IntegrationEnv env;
  auto ns = env.new_namespace("nmi-sp");
  NmiProcess nmi(env.options("node-sp"));
  auto ip1 = IntegrationEnv::next_ip(), ip2 = IntegrationEnv::next_ip(), ip3 = IntegrationEnv::next_ip();
  env.create_secret(ns, "sp-secret", {{"clientSecret", env.sp_secret}});
  env.create_secret(ns, "sp-cert", {{"certificate", env.cert_p12}, {"password", env.cert_password}});

  kube::AzureIdentity secret_id;
  secret_id.meta.ns = ns;
  secret_id.meta.name = "sp-one";
  secret_id.type = 1;
  secret_id.client_id = env.sp_secret_client;
  secret_id.tenant_id = env.emu.tenant_id();
  secret_id.ad_endpoint = env.emu.url() + "/";
  secret_id.client_password = kube::SecretReference{"sp-secret", ns};
  auto id1 = env.create_identity(secret_id);
  auto multi = secret_id;
  multi.meta.name = "sp-multi";
  multi.auxiliary_tenant_ids = {env.emu.tenant_id()};
  auto idm = env.create_identity(multi);
  auto cert_id = secret_id;
  cert_id.meta.name = "sp-cert";
  cert_id.type = 2;
  cert_id.client_id = env.sp_cert_client;
  cert_id.client_password = kube::SecretReference{"sp-cert", ns};
  auto id2 = env.create_identity(cert_id);
  env.create_binding(ns, "b1", "sp-one", "s1");
  env.create_binding(ns, "bm", "sp-multi", "sm");
  env.create_binding(ns, "b2", "sp-cert", "s2");
  env.create_pod(ns, "p1", nmi.node(), ip1, {{"aadpodidbinding", "s1"}});
  env.create_pod(ns, "pm", nmi.node(), ip2, {{"aadpodidbinding", "sm"}});
  env.create_pod(ns, "p2", nmi.node(), ip3, {{"aadpodidbinding", "s2"}});
  env.create_assigned(ns, "p1", nmi.node(), id1, "Assigned");
  env.create_assigned(ns, "pm", nmi.node(), idm, "Assigned");
  env.create_assigned(ns, "p2", nmi.node(), id2, "Assigned");

  auto r1 = http_from(ip1, nmi.port(), kToken);
  REQUIRE(r1.status == 200);
  CHECK(claims(str(r1.json(), "access_token")).at("appid").as_string() == env.sp_secret_client);
  auto rm = http_from(ip2, nmi.port(), kToken);
  REQUIRE(rm.status == 200);
  REQUIRE(rm.json().is_array());
  CHECK(rm.json().as_array().size() == 2);
  auto r2 = http_from(ip3, nmi.port(), kToken);
  REQUIRE(r2.status == 200);
  CHECK(claims(str(r2.json(), "access_token")).at("appid").as_string() == env.sp_cert_client);

  // A wrong secret is refused by AAD: 403 with AAD's error.
  env.create_secret(ns, "bad-secret", {{"clientSecret", "wrong"}});
  auto bad = secret_id;
  bad.meta.name = "sp-bad";
  bad.client_password = kube::SecretReference{"bad-secret", ns};
  auto idb = env.create_identity(bad);
  env.create_binding(ns, "bb", "sp-bad", "sb");
  auto ipb = IntegrationEnv::next_ip();
  env.create_pod(ns, "pb", nmi.node(), ipb, {{"aadpodidbinding", "sb"}});
  env.create_assigned(ns, "pb", nmi.node(), idb, "Assigned");
  auto rb = http_from(ipb, nmi.port(), kToken);
  CHECK(rb.status == 403);
  CHECK(str(rb.json(), "error") == "invalid_client");
}

TEST_CASE("exceptions and the MIC go straight to IMDS") {
  IntegrationEnv env;
  auto ns = env.new_namespace("nmi-exc");
  auto options = env.options("node-exc");
  options.mic_namespace = ns;
  NmiProcess nmi(options);
  auto ip = IntegrationEnv::next_ip(), ip_mic = IntegrationEnv::next_ip();
  env.create_exception(ns, "exc", {{"app", "special"}});
  env.create_pod(ns, "excepted", nmi.node(), ip, {{"app", "SPECIAL"}});
  env.create_pod(ns, "mic-5d8f-x", nmi.node(), ip_mic, {{"component", "mic"}}, "mic-5d8f");
  auto by_client = http_from(ip, nmi.port(), kToken + "&client_id=" + env.mi2_client);
  REQUIRE(by_client.status == 200);
  CHECK(claims(str(by_client.json(), "access_token")).at("appid").as_string() == env.mi2_client);
  auto system = http_from(ip_mic, nmi.port(), kToken);  // the VM's system identity
  CHECK(system.status == 200);
  auto not_assigned = http_from(ip, nmi.port(), kToken + "&client_id=00000000-0000-0000-0000-00000000dead");
  CHECK(not_assigned.status == 400);  // IMDS's own answer, relayed
}

TEST_CASE("managed mode: identities of the pod's namespace, no assignments needed") {
  IntegrationEnv env;
  auto ns = env.new_namespace("nmi-managed");
  auto options = env.options("node-managed");
  options.operation_mode = "managed";
  options.force_namespaced = true;
  NmiProcess nmi(options);
  auto ip = IntegrationEnv::next_ip();
  env.create_identity(managed_identity(ns, "mi-two", env.mi2_client, env.mi2_id));
  env.create_binding(ns, "b", "mi-two", "sel");
  auto other = env.new_namespace("nmi-managed-other");
  env.create_identity(managed_identity(other, "mi-one", env.mi1_client, env.mi1_id));
  env.create_binding(other, "b", "mi-one", "sel");
  env.create_pod(ns, "pod", nmi.node(), ip, {{"aadpodidbinding", "sel"}});
  auto r = http_from(ip, nmi.port(), kToken);
  REQUIRE(r.status == 200);
  CHECK(claims(str(r.json(), "access_token")).at("appid").as_string() == env.mi2_client);
  CHECK(http_from(ip, nmi.port(), kToken + "&client_id=" + env.mi1_client).status == 404);
}
