#include "tests/conformance/harness.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace husk::conformance {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string env_or(const char* name, const std::string& def) {
  const char* v = std::getenv(name);
  return v && *v ? v : def;
}

std::string g_scratch;
std::string g_socket;
pid_t g_agent = -1;

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string strip_cr(std::string s) {
  std::string o;
  for (char c : s)
    if (c != '\r' && c != '\0') o += c;
  return o;
}

// One husk-agent for the whole suite, like one runc binary.
class AgentEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    char tmpl[] = "/tmp/husk-conformance-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    g_scratch = tmpl;
    g_socket = g_scratch + "/agent.sock";
    std::string agent = env_or("HUSK_AGENT", HUSK_AGENT_PATH);
    g_agent = fork();
    ASSERT_GE(g_agent, 0);
    if (g_agent == 0) {
      std::string listen = "unix:" + g_socket;
      std::string state = g_scratch + "/state";
      int log = open((g_scratch + "/agent.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(log, 2);
      execl(agent.c_str(), agent.c_str(), "--listen", listen.c_str(), "--state-dir", state.c_str(),
            "--cgroup-parent", "/husk-conformance", "--log-level", "debug", nullptr);
      _exit(127);
    }
    for (int i = 0; i < 200 && !fs::exists(g_socket); i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_TRUE(fs::exists(g_socket)) << "husk-agent did not start: " << slurp(g_scratch + "/agent.log");
  }
  void TearDown() override {
    if (g_agent > 0) {
      kill(g_agent, SIGTERM);
      int st;
      waitpid(g_agent, &st, 0);
    }
    if (::testing::UnitTest::GetInstance()->Passed()) {
      std::error_code ec;
      fs::remove_all(g_scratch, ec);
    } else {
      std::fprintf(stderr, "agent log: %s\n%s\n", (g_scratch + "/agent.log").c_str(), slurp(g_scratch + "/agent.log").c_str());
    }
  }
};

[[maybe_unused]] auto* const g_env = ::testing::AddGlobalTestEnvironment(new AgentEnvironment);  // NOLINT: gtest owns it

}  // namespace

std::string scratch_dir() { return g_scratch; }
std::string runc() { return env_or("HUSK_RUNC", "runc"); }
std::string runc_run_cmd() {
  // --no-pivot where the root is an initramfs (the test host), which pivot_root cannot leave.
  return runc() + " run " + env_or("HUSK_RUNC_RUN_FLAGS", "");
}
std::string agentctl() {
  return env_or("HUSK_AGENTCTL", HUSK_AGENTCTL_PATH) + " --address unix:" + g_socket;
}

Out sh(const std::string& cmd) {
  static int n = 0;
  std::string base = g_scratch + "/cmd" + std::to_string(n++);
  std::string full = "(" + cmd + ") >" + base + ".out 2>" + base + ".err </dev/null";
  int st = std::system(full.c_str());
  Out o;
  o.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  o.out = strip_cr(slurp(base + ".out"));
  o.err = slurp(base + ".err");
  return o;
}

Bundle make_bundle(const std::string& name, const std::string& script, const std::function<void(json&)>& edit) {
  std::string base = env_or("HUSK_TEST_BUNDLE", HUSK_TEST_BUNDLE_PATH);
  Bundle b;
  b.dir = g_scratch + "/" + name;
  fs::create_directories(b.dir);
  b.config = json::parse(slurp(base + "/config.json"));
  b.config["root"]["path"] = fs::absolute(base + "/rootfs").string();
  b.config["process"]["args"] = json::array({"sh", "-c", script});
  b.config["hostname"] = "husk-conformance";
  if (edit) edit(b.config);
  std::ofstream(b.dir + "/config.json") << b.config.dump(2);
  return b;
}

Out runc_run(const Bundle& b, const std::string& id) {
  bool tty = b.config["process"].value("terminal", false);
  std::string run = runc_run_cmd() + " --bundle " + quote(b.dir) + " " + id;
  // runc wants a controlling terminal of its own for terminal containers.
  // script(1) shows the NUL runc writes to the terminal as "^@".
  if (!tty) return sh(run);
  Out o = sh("script -qec " + quote(run) + " /dev/null");
  for (size_t p; (p = o.out.find("^@")) != std::string::npos;) o.out.erase(p, 2);
  return o;
}

Out husk_run(const Bundle& b, const std::string& id) {
  return sh(agentctl() + " run --id " + id + " --bundle " + quote(b.dir));
}

}  // namespace husk::conformance
