#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/flags.hpp"

using namespace std::chrono_literals;
using aad::FlagError;
using aad::FlagSet;

namespace {

struct Sample {
  std::string name;
  bool on = false;
  std::int64_t count = 0;
  aad::Duration wait{};
  FlagSet fs{"sample"};
  Sample() {
    fs.add_string("name", &name, "dflt", "a name", "SAMPLE_NAME");
    fs.add_bool("on", &on, false, "a switch", "SAMPLE_ON");
    fs.add_int("count", &count, 7, "a count", 1, 100);
    fs.add_duration("wait", &wait, 5s, "a wait", 0s);
    fs.add_noop("logtostderr", true, "klog");
  }
  void parse(std::vector<std::string> args) { fs.parse(args); }
};

}  // namespace

TEST_CASE("defaults apply when nothing is given") {
  Sample s;
  s.parse({});
  CHECK(s.name == "dflt");
  CHECK_FALSE(s.on);
  CHECK(s.count == 7);
  CHECK(s.wait == 5s);
}

TEST_CASE("every syntax the Go flag package accepts") {
  Sample s;
  s.parse({"-name", "a", "--count=3", "-wait=1m", "--on"});
  CHECK(s.name == "a");
  CHECK(s.count == 3);
  CHECK(s.wait == 1min);
  CHECK(s.on);
  s.parse({"--name=b", "--count", "4", "-on=false"});
  CHECK(s.name == "b");
  CHECK(s.count == 4);
  CHECK_FALSE(s.on);
  s.parse({"--on=true", "--name="});
  CHECK(s.on);
  CHECK(s.name.empty());
  CHECK(s.fs.was_set("on"));
  CHECK_FALSE(s.fs.was_set("count"));
}

TEST_CASE("a bool flag never swallows the next argument") {
  Sample s;
  CHECK_THROWS_AS(s.parse({"--on", "false"}), FlagError);  // "false" is a stray positional
}

TEST_CASE("bad input names the flag and the problem") {
  Sample s;
  auto message = [&](std::vector<std::string> args) {
    try {
      s.parse(std::move(args));
    } catch (const FlagError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message({"--count=abc"}) == "invalid value \"abc\" for flag --count: not an integer");
  CHECK(message({"--count=0"}) == "invalid value \"0\" for flag --count: must be at least 1");
  CHECK(message({"--count=101"}) == "invalid value \"101\" for flag --count: must be at most 100");
  CHECK(message({"--count=99999999999999999999"}).find("out of range") != std::string::npos);
  CHECK(message({"--wait=10"}).find("flag --wait: not a duration") != std::string::npos);
  CHECK(message({"--wait=-1s"}).find("must be at least 0s") != std::string::npos);
  CHECK(message({"--on=yes"}) == "invalid value \"yes\" for flag --on: not a boolean (want true or false)");
  CHECK(message({"--nope"}) == "unknown flag --nope for sample (see --help)");
  CHECK(message({"--count"}) == "flag --count needs a value");
  CHECK(message({"stray"}).find("unexpected argument \"stray\"") != std::string::npos);
  CHECK(message({"---count=1"}).find("bad flag syntax") != std::string::npos);
}

TEST_CASE("integers as Go's ParseInt(s, 0, 64) reads them") {
  Sample s;
  s.parse({"--count=+80"});
  CHECK(s.count == 80);
  s.parse({"--count=0x50"});
  CHECK(s.count == 80);
  s.parse({"--count=0o17"});
  CHECK(s.count == 15);
  s.parse({"--count=017"});
  CHECK(s.count == 15);
  s.parse({"--count=0b101"});
  CHECK(s.count == 5);
  CHECK_THROWS_AS(s.parse({"--count=08"}), FlagError);   // not octal
  CHECK_THROWS_AS(s.parse({"--count= 8"}), FlagError);   // no spaces
  CHECK_THROWS_AS(s.parse({"--count=0x"}), FlagError);
}

TEST_CASE("values in messages are quoted: one line, no terminal escapes") {
  Sample s;
  try {
    s.parse({"--count=1\n2\x1b[31m\"q\""});
    FAIL("no error");
  } catch (const FlagError& e) {
    std::string m = e.what();
    CHECK(m == R"(invalid value "1\n2\x1b[31m\"q\"" for flag --count: not an integer)");
    CHECK(m.find('\n') == std::string::npos);
    CHECK(m.find('\x1b') == std::string::npos);
  }
  CHECK(aad::quote("plain ü") == "\"plain ü\"");
}

TEST_CASE("environment variables are the fallback, flags win") {
  Sample s;
  ::setenv("SAMPLE_NAME", "from-env", 1);
  ::setenv("SAMPLE_ON", "true", 1);
  s.parse({});
  CHECK(s.name == "from-env");
  CHECK(s.on);
  s.parse({"--name=flag", "--on=false"});
  CHECK(s.name == "flag");
  CHECK_FALSE(s.on);
  ::setenv("SAMPLE_ON", "sometimes", 1);
  CHECK_THROWS_WITH(s.parse({}), Catch::Contains("environment variable SAMPLE_ON"));
  ::unsetenv("SAMPLE_NAME");
  ::unsetenv("SAMPLE_ON");
}

TEST_CASE("help and compatibility no-ops") {
  Sample s;
  CHECK_THROWS_AS(s.parse({"--help"}), aad::HelpRequested);
  CHECK_THROWS_AS(s.parse({"-h"}), aad::HelpRequested);
  s.parse({"--logtostderr"});
  CHECK(s.fs.noops_set() == std::vector<std::string>{"logtostderr"});
  auto usage = s.fs.usage();
  CHECK(usage.find("--count value") != std::string::npos);
  CHECK(usage.find("(default 7)") != std::string::npos);
  CHECK(usage.find("[env SAMPLE_NAME]") != std::string::npos);
}
