// husk-agent in host mode on this machine, driven over gRPC: hostile and broken requests get
// clear errors and the agent keeps serving; output is never lost at exit; stdin reaches the
// process. (Conformance with runc is tests/conformance.)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "guest-agent/client/connect.h"
#include "proto/agent.grpc.pb.h"

namespace husk {
namespace {

namespace v1 = agent::v1;
using json = nlohmann::json;
namespace fs = std::filesystem;

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class AgentHost : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/husk-agent-host-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    pid_ = fork();
    if (pid_ == 0) {
      int log = open((dir_ + "/agent.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(log, 2);
      std::string listen = "unix:" + dir_ + "/agent.sock";
      std::string state = dir_ + "/state";
      execl(HUSK_AGENT_PATH, "husk-agent", "--listen", listen.c_str(), "--state-dir", state.c_str(),
            "--cgroup-parent", "/husk-host-test", nullptr);
      _exit(127);
    }
    auto ch = agent_client::connect("unix:" + dir_ + "/agent.sock", std::chrono::seconds(10));
    ASSERT_TRUE(ch) << ch.error().message;
    channel_ = *ch;
  }
  static void TearDownTestSuite() {
    channel_.reset();
    kill(pid_, SIGTERM);
    int st;
    waitpid(pid_, &st, 0);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void TearDown() override {
    // Whatever a test did, the agent must still answer.
    auto stub = v1::Agent::NewStub(channel_);
    grpc::ClientContext ctx;
    v1::HealthResponse h;
    EXPECT_TRUE(stub->Health(&ctx, v1::HealthRequest(), &h).ok()) << slurp(dir_ + "/agent.log");
  }

  std::unique_ptr<v1::Agent::Stub> stub() { return v1::Agent::NewStub(channel_); }

  static json config(const std::string& script) {
    json c = json::parse(slurp(std::string(HUSK_TEST_BUNDLE_PATH) + "/config.json"));
    c["process"]["args"] = {"sh", "-c", script};
    c["root"]["path"] = std::string(HUSK_TEST_BUNDLE_PATH) + "/rootfs";
    return c;
  }

  grpc::Status create(const std::string& id, const std::string& config_json, v1::StdioMode mode = v1::STDIO_STREAM) {
    grpc::ClientContext ctx;
    v1::CreateContainerRequest req;
    req.set_id(id);
    req.set_config_json(config_json);
    req.set_stdio(mode);
    v1::CreateContainerResponse resp;
    return stub()->CreateContainer(&ctx, req, &resp);
  }
  grpc::Status start(const std::string& id) {
    grpc::ClientContext ctx;
    v1::ContainerRequest req;
    req.set_container_id(id);
    v1::Empty e;
    return stub()->StartContainer(&ctx, req, &e);
  }
  int wait(const std::string& id, const std::string& eid = "") {
    grpc::ClientContext ctx;
    v1::ProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(eid);
    v1::WaitProcessResponse resp;
    auto s = stub()->WaitProcess(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.exit_status();
  }
  void remove(const std::string& id) {
    grpc::ClientContext ctx;
    v1::RemoveContainerRequest req;
    req.set_container_id(id);
    req.set_force(true);
    v1::Empty e;
    auto s = stub()->RemoveContainer(&ctx, req, &e);
    EXPECT_TRUE(s.ok()) << s.error_message();
  }
  std::string read_all(const std::string& id, bool err = false, const std::string& eid = "") {
    grpc::ClientContext ctx;
    v1::ProcessRequest req;
    req.set_container_id(id);
    req.set_exec_id(eid);
    auto r = err ? stub()->ReadStderr(&ctx, req) : stub()->ReadStdout(&ctx, req);
    std::string all;
    v1::IoChunk c;
    while (r->Read(&c)) all += c.data();
    EXPECT_TRUE(r->Finish().ok());
    return all;
  }

  static std::string dir_;
  static pid_t pid_;
  static std::shared_ptr<grpc::Channel> channel_;
};

std::string AgentHost::dir_;
pid_t AgentHost::pid_ = -1;
std::shared_ptr<grpc::Channel> AgentHost::channel_;

TEST_F(AgentHost, MalformedConfigsGetInvalidArgumentNamingTheField) {
  struct Case {
    std::string config;
    std::string expect;
  };
  json wrong_type = config("true");
  wrong_type["process"]["user"]["uid"] = "root";
  json bad_ns = config("true");
  bad_ns["linux"]["namespaces"].push_back({{"type", "bogus"}});
  json traversal = config("true");
  traversal["mounts"].push_back({{"destination", "/tmp/../../etc"}, {"type", "tmpfs"}});
  json absurd = config("true");
  absurd["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 100}, {"hard", 1}}};
  json huge = config("true");
  for (int i = 0; i < 9000; i++) huge["process"]["env"].push_back(std::string("X").append(std::to_string(i)).append("=1"));
  for (const auto& c : std::vector<Case>{{"{", "not valid JSON"},
                                         {wrong_type.dump(), "process.user.uid"},
                                         {bad_ns.dump(), "unknown namespace \"bogus\""},
                                         {traversal.dump(), "climbs out"},
                                         {absurd.dump(), "exceeds hard limit"},
                                         {huge.dump(), "process.env"}}) {
    auto s = create("bad", c.config);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_NE(s.error_message().find(c.expect), std::string::npos) << s.error_message();
  }
}

TEST_F(AgentHost, MissingRootfsAndMissingProgramAreClearErrors) {
  json c = config("true");
  c["root"]["path"] = "/nonexistent/rootfs";
  auto s = create("noroot", c.dump());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("/nonexistent/rootfs is not a directory"), std::string::npos) << s.error_message();

  c = config("true");
  c["process"]["args"] = {"no-such-program"};
  s = create("noprog", c.dump());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("\"no-such-program\": executable file not found in $PATH"), std::string::npos)
      << s.error_message();
  // The failed ids are free again.
  ASSERT_TRUE(create("noprog", config("true").dump()).ok());
  remove("noprog");
}

TEST_F(AgentHost, DuplicateIdsAndUnknownContainers) {
  ASSERT_TRUE(create("dup", config("sleep 10").dump()).ok());
  auto s = create("dup", config("true").dump());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(start("nope").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(create("../evil", config("true").dump()).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  remove("dup");
}

TEST_F(AgentHost, SignalsToDeadProcessesAndWaitStatus) {
  ASSERT_TRUE(create("dead", config("exit 4").dump()).ok());
  ASSERT_TRUE(start("dead").ok());
  EXPECT_EQ(wait("dead"), 4);
  grpc::ClientContext ctx;
  v1::SignalProcessRequest req;
  req.set_container_id("dead");
  req.set_signal(SIGTERM);
  v1::Empty e;
  auto s = stub()->SignalProcess(&ctx, req, &e);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(s.error_message().find("already exited"), std::string::npos) << s.error_message();
  grpc::ClientContext ctx2;
  v1::ContainerRequest cr;
  cr.set_container_id("dead");
  v1::ContainerState st;
  ASSERT_TRUE(stub()->StateContainer(&ctx2, cr, &st).ok());
  EXPECT_EQ(st.status(), v1::ContainerState::STOPPED);
  EXPECT_EQ(st.exit_status(), 4);
  remove("dead");
}

TEST_F(AgentHost, NoOutputIsLostAtExit) {
  // 4 MiB, more than the agent buffers, written just before exiting.
  ASSERT_TRUE(create("flood", config("head -c 4194304 /dev/zero | tr '\\0' 'x'; echo -n tail >&2; exit 9").dump()).ok());
  std::string out, err;
  std::thread r1([&] { out = read_all("flood"); });
  std::thread r2([&] { err = read_all("flood", true); });
  ASSERT_TRUE(start("flood").ok());
  EXPECT_EQ(wait("flood"), 9);
  r1.join();
  r2.join();
  EXPECT_EQ(out.size(), 4194304u);
  EXPECT_EQ(out.find_first_not_of('x'), std::string::npos);
  EXPECT_EQ(err, "tail");
  remove("flood");
}

TEST_F(AgentHost, StdinReachesTheProcess) {
  ASSERT_TRUE(create("cat", config("tr a-z A-Z").dump()).ok());
  std::string out;
  std::thread r([&] { out = read_all("cat"); });
  ASSERT_TRUE(start("cat").ok());
  {
    grpc::ClientContext ctx;
    v1::Empty e;
    auto w = stub()->WriteStdin(&ctx, &e);
    v1::StdinChunk c;
    c.set_container_id("cat");
    c.set_data("hello ");
    ASSERT_TRUE(w->Write(c));
    c.clear_container_id();
    c.set_data("husk\n");
    ASSERT_TRUE(w->Write(c));
    w->WritesDone();
    EXPECT_TRUE(w->Finish().ok());
  }
  grpc::ClientContext ctx;
  v1::ProcessRequest pr;
  pr.set_container_id("cat");
  v1::Empty e;
  ASSERT_TRUE(stub()->CloseStdin(&ctx, pr, &e).ok());
  EXPECT_EQ(wait("cat"), 0);
  r.join();
  EXPECT_EQ(out, "HELLO HUSK\n");
  remove("cat");
}

TEST_F(AgentHost, ClientVanishingMidStreamHarmsNothing) {
  ASSERT_TRUE(create("chatty", config("yes husk").dump()).ok());
  ASSERT_TRUE(start("chatty").ok());
  {
    grpc::ClientContext ctx;
    v1::ProcessRequest req;
    req.set_container_id("chatty");
    auto r = stub()->ReadStdout(&ctx, req);
    v1::IoChunk c;
    ASSERT_TRUE(r->Read(&c));
    EXPECT_EQ(c.data().substr(0, 5), "husk\n");
    ctx.TryCancel();
  }
  // Another container runs while the first is still producing.
  ASSERT_TRUE(create("other", config("echo fine").dump()).ok());
  std::string out;
  std::thread t([&] { out = read_all("other"); });
  ASSERT_TRUE(start("other").ok());
  EXPECT_EQ(wait("other"), 0);
  t.join();
  EXPECT_EQ(out, "fine\n");
  remove("other");
  remove("chatty");  // force: kills `yes`
}

TEST_F(AgentHost, ExecIntoARunningContainer) {
  ASSERT_TRUE(create("ex", config("sleep 30").dump(), v1::STDIO_NULL).ok());
  ASSERT_TRUE(start("ex").ok());
  grpc::ClientContext ctx;
  v1::ExecProcessRequest req;
  req.set_container_id("ex");
  req.set_exec_id("e1");
  req.set_process_json(json{{"args", {"sh", "-c", "echo $$; hostname"}}, {"cwd", "/"}}.dump());
  req.set_stdio(v1::STDIO_STREAM);
  v1::ExecProcessResponse resp;
  ASSERT_TRUE(stub()->ExecProcess(&ctx, req, &resp).ok());
  std::string out = read_all("ex", false, "e1");
  EXPECT_EQ(wait("ex", "e1"), 0);
  EXPECT_EQ(out, "2\nrunc\n");  // pid 2 in the container's pid namespace; the bundle's hostname
  remove("ex");
}

TEST_F(AgentHost, JoinsAnotherContainersNamespaceByPath) {
  json a = config("sleep 30");
  a["hostname"] = "first-box";
  grpc::ClientContext ctx;
  v1::CreateContainerRequest req;
  req.set_id("ns-a");
  req.set_config_json(a.dump());
  v1::CreateContainerResponse resp;
  ASSERT_TRUE(stub()->CreateContainer(&ctx, req, &resp).ok());
  ASSERT_TRUE(start("ns-a").ok());
  json b = config("hostname; readlink /proc/self/ns/uts");
  b.erase("hostname");
  for (auto& n : b["linux"]["namespaces"])
    if (n["type"] == "uts") n["path"] = "/proc/" + std::to_string(resp.pid()) + "/ns/uts";
  ASSERT_TRUE(create("ns-b", b.dump()).ok());
  std::string out;
  std::thread t([&] { out = read_all("ns-b"); });
  ASSERT_TRUE(start("ns-b").ok());
  EXPECT_EQ(wait("ns-b"), 0);
  t.join();
  char link[64] = {};
  ASSERT_GT(readlink(("/proc/" + std::to_string(resp.pid()) + "/ns/uts").c_str(), link, sizeof link - 1), 0);
  EXPECT_EQ(out, std::string("first-box\n") + link + "\n");
  remove("ns-b");
  remove("ns-a");
}

}  // namespace
}  // namespace husk
