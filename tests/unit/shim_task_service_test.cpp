// The shim's Task service over real ttrpc, against a fake agent (in-process gRPC) in a fake
// sandbox: the call sequence containerd makes, events in order, calls racing the last Delete
// (under TSan and ASan: no use of a freed agent stub), a slow Create that must not hold up other
// tasks' calls, containerd's deadline reaching the agent call, and OOM events for ids that are
// not this shim's.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "github.com/containerd/containerd/api/events/task.pb.h"
#include "github.com/containerd/containerd/api/types/task/task.pb.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb.h"
#include "shim/task_service.h"
#include "shim/ttrpc/client.h"

namespace husk::shim {
namespace {

namespace task = containerd::task::v2;
namespace v1 = agent::v1;
using namespace std::chrono_literals;

// The agent's side of the containers: a process runs until it is signalled.
class FakeAgent final : public v1::Agent::Service {
 public:
  std::atomic<int> create_delay_ms{0};
  std::atomic<int> pids_delay_ms{0};
  std::atomic<int> creates{0};
  std::atomic<int64_t> pids_deadline_ms{-1};  // what the last ListProcesses had left

  grpc::Status CreateContainer(grpc::ServerContext*, const v1::CreateContainerRequest* req,
                               v1::CreateContainerResponse* out) override {
    creates++;
    std::this_thread::sleep_for(std::chrono::milliseconds(create_delay_ms.load()));
    std::lock_guard lk(mu_);
    live_.insert(req->id());
    out->set_pid(100 + creates.load());
    return grpc::Status::OK;
  }
  grpc::Status StartContainer(grpc::ServerContext*, const v1::ContainerRequest*, v1::Empty*) override {
    return grpc::Status::OK;
  }
  grpc::Status ExecProcess(grpc::ServerContext*, const v1::ExecProcessRequest* req, v1::ExecProcessResponse* out) override {
    std::lock_guard lk(mu_);
    live_.insert(req->container_id() + "/" + req->exec_id());
    out->set_pid(500);
    return grpc::Status::OK;
  }
  grpc::Status SignalProcess(grpc::ServerContext*, const v1::SignalProcessRequest* req, v1::Empty*) override {
    std::lock_guard lk(mu_);
    std::string key = req->exec_id().empty() ? req->container_id() : req->container_id() + "/" + req->exec_id();
    if (!live_.count(key)) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such process");
    exits_[key] = 128 + req->signal();
    cv_.notify_all();
    return grpc::Status::OK;
  }
  grpc::Status WaitProcess(grpc::ServerContext* ctx, const v1::ProcessRequest* req, v1::WaitProcessResponse* out) override {
    std::string key = req->exec_id().empty() ? req->container_id() : req->container_id() + "/" + req->exec_id();
    std::unique_lock lk(mu_);
    while (!exits_.count(key)) {
      if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      cv_.wait_for(lk, 20ms);
    }
    out->set_exit_status(exits_[key]);
    return grpc::Status::OK;
  }
  grpc::Status RemoveContainer(grpc::ServerContext*, const v1::RemoveContainerRequest* req, v1::Empty*) override {
    std::lock_guard lk(mu_);
    live_.erase(req->container_id());
    return grpc::Status::OK;
  }
  grpc::Status StateContainer(grpc::ServerContext*, const v1::ContainerRequest*, v1::ContainerState*) override {
    return grpc::Status::OK;
  }
  grpc::Status StatsContainer(grpc::ServerContext*, const v1::ContainerRequest*, v1::ContainerStats* out) override {
    out->mutable_pids()->set_current(3);
    return grpc::Status::OK;
  }
  grpc::Status ListProcesses(grpc::ServerContext* ctx, const v1::ContainerRequest*, v1::ListProcessesResponse* out) override {
    pids_deadline_ms = std::chrono::duration_cast<std::chrono::milliseconds>(ctx->deadline() - std::chrono::system_clock::now()).count();
    for (int waited = 0; waited < pids_delay_ms.load() && !ctx->IsCancelled(); waited += 10) std::this_thread::sleep_for(10ms);
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    out->add_processes()->set_pid(7);
    return grpc::Status::OK;
  }
  grpc::Status ReadStdout(grpc::ServerContext*, const v1::ProcessRequest*, grpc::ServerWriter<v1::IoChunk>*) override {
    return grpc::Status::OK;
  }
  grpc::Status ReadStderr(grpc::ServerContext*, const v1::ProcessRequest*, grpc::ServerWriter<v1::IoChunk>*) override {
    return grpc::Status::OK;
  }
  grpc::Status GetOomEvents(grpc::ServerContext* ctx, const v1::OomEventsRequest*, grpc::ServerWriter<v1::OomEvent>* w) override {
    for (;;) {
      std::string id;
      {
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, 20ms);
        if (ctx->IsCancelled() || stopped_) return grpc::Status::OK;
        if (oom_.empty()) continue;
        id = oom_.front();
        oom_.erase(oom_.begin());
      }
      v1::OomEvent e;
      e.set_container_id(id);
      if (!w->Write(e)) return grpc::Status::OK;
    }
  }
  void oom(const std::string& id) {
    std::lock_guard lk(mu_);
    oom_.push_back(id);
    cv_.notify_all();
  }
  void stop() {
    std::lock_guard lk(mu_);
    stopped_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> live_;
  std::map<std::string, int> exits_;
  std::vector<std::string> oom_;
  bool stopped_ = false;
};

class FakeSandbox : public Sandbox {
 public:
  FakeSandbox(Config c, std::string dir, FakeAgent& agent, std::atomic<int>& stops)
      : Sandbox(std::move(c), std::move(dir)), agent_(agent), stops_(stops) {}
  // The in-process server is shut down only with the sandbox: calls that copied the sandbox
  // before the last Delete stopped it still hold it and may still create calls on its channel,
  // which gRPC 1.51's in-process transport does not survive once its server is shut down (a real
  // agent is across a socket, where a VMM that went away is an error, not a crash). After stop()
  // the fake agent itself ends its streams and answers as a stopped agent would.
  ~FakeSandbox() override {
    FakeSandbox::stop();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 100ms);
    channel_.reset();
    server_.reset();
  }
  Status start() override {
    grpc::ServerBuilder b;
    b.RegisterService(&agent_);
    server_ = b.BuildAndStart();
    channel_ = server_->InProcessChannel(grpc::ChannelArguments());
    return {};
  }
  Status attach_rootfs(const std::string&, const std::string&, const std::vector<RootfsMount>&, bool,
                       const std::vector<MountPoint>&) override {
    return {};
  }
  void detach_rootfs(const std::string&, const std::string&) override {}
  agent::v1::Rootfs rootfs(const std::string&, const std::string& bundle) const override {
    agent::v1::Rootfs r;
    r.set_path(bundle + "/rootfs");
    return r;
  }
  void stop() override {
    if (!server_ || stopped_.exchange(true)) return;
    stops_++;
    agent_.stop();
  }

 private:
  FakeAgent& agent_;
  std::atomic<int>& stops_;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<bool> stopped_{false};
};

struct Recorder : EventSink {
  std::mutex mu;
  std::vector<std::string> topics;
  std::vector<std::string> oom_ids;
  bool publish(const google::protobuf::Message& e) override {
    std::lock_guard lk(mu);
    topics.push_back(topic_for(e));
    if (auto* oom = dynamic_cast<const containerd::events::TaskOOM*>(&e)) oom_ids.push_back(oom->container_id());
    return true;
  }
  void drain() override {}
};

struct TaskServiceTest : ::testing::Test {
  boost::asio::io_context io;
  std::unique_ptr<ttrpc::Server> server;
  std::unique_ptr<TaskService> service;
  std::thread loop;
  std::string dir, sock;
  FakeAgent agent;
  std::atomic<int> stops{0};
  Recorder events;

  void SetUp() override {
    char t[] = "/tmp/husk-task-XXXXXX";
    ASSERT_NE(mkdtemp(t), nullptr);
    dir = t;
    sock = dir + "/task.sock";
    setenv("HUSK_SHIM_CONFIG", (dir + "/shim.json").c_str(), 1);
    std::ofstream(dir + "/shim.json") << "{\"mode\": \"host\", \"state_dir\": \"" << dir << "/run\"}";
    server = std::make_unique<ttrpc::Server>(io);
    service = std::make_unique<TaskService>(
        "ns", "pod", &events, [] {},
        [this](const Config& c, const std::string& d) -> Result<std::shared_ptr<Sandbox>> {
          return std::shared_ptr<Sandbox>(std::make_shared<FakeSandbox>(c, d, agent, stops));
        });
    service->register_with(*server);
    ASSERT_TRUE(server->listen(sock));
    server->start();
    loop = std::thread([this] { io.run(); });
  }
  void TearDown() override {
    service.reset();
    server->stop();
    io.stop();
    loop.join();
    unsetenv("HUSK_SHIM_CONFIG");
    std::filesystem::remove_all(dir);
  }
  std::unique_ptr<ttrpc::Client> client() { return std::move(ttrpc::Client::connect(sock).value()); }
  std::string bundle(const std::string& id) {
    std::string b = dir + "/" + id;
    std::filesystem::create_directories(b + "/rootfs");
    std::ofstream(b + "/config.json") << R"({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["true"], "cwd": "/"}})";
    return b;
  }
  ttrpc::Reply call(ttrpc::Client& c, const char* method, const google::protobuf::Message& m, std::chrono::milliseconds t = 10s) {
    auto r = c.call("containerd.task.v2.Task", method, m.SerializeAsString(), t);
    EXPECT_TRUE(r) << method << ": " << (r ? "" : r.error().message);
    return r ? *r : ttrpc::Reply::error(ttrpc::wire(ErrorCode::kUnknown), "no reply");
  }
  void create(ttrpc::Client& c, const std::string& id) {
    task::CreateTaskRequest req;
    req.set_id(id);
    req.set_bundle(bundle(id));
    auto r = call(c, "Create", req, 30s);
    ASSERT_EQ(r.code, ttrpc::kOk) << r.message;
  }
  template <class Req>
  Req req(const std::string& id, const std::string& exec = "") {
    Req r;
    r.set_id(id);
    if constexpr (requires { r.set_exec_id(exec); }) r.set_exec_id(exec);
    return r;
  }
};

TEST_F(TaskServiceTest, CreateStartKillWaitDeleteInContainerdsOrder) {
  auto c = client();
  create(*c, "c1");
  EXPECT_EQ(call(*c, "Start", req<task::StartRequest>("c1")).code, ttrpc::kOk);
  task::StateResponse st;
  ASSERT_TRUE(st.ParseFromString(call(*c, "State", req<task::StateRequest>("c1")).payload));
  EXPECT_EQ(st.status(), containerd::v1::types::RUNNING);
  auto kill = req<task::KillRequest>("c1");
  kill.set_signal(9);
  EXPECT_EQ(call(*c, "Kill", kill).code, ttrpc::kOk);
  task::WaitResponse w;
  ASSERT_TRUE(w.ParseFromString(call(*c, "Wait", req<task::WaitRequest>("c1")).payload));
  EXPECT_EQ(w.exit_status(), 137u);
  EXPECT_EQ(call(*c, "Delete", req<task::DeleteRequest>("c1")).code, ttrpc::kOk);
  EXPECT_EQ(call(*c, "State", req<task::StateRequest>("c1")).code, ttrpc::wire(ErrorCode::kNotFound));
  EXPECT_EQ(stops.load(), 1);  // the last Delete stopped the sandbox
  std::lock_guard lk(events.mu);
  EXPECT_EQ(events.topics, (std::vector<std::string>{"/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"}));
}

TEST_F(TaskServiceTest, ASlowCreateDoesNotHoldUpOtherTasks) {
  auto c = client();
  create(*c, "first");
  ASSERT_EQ(call(*c, "Start", req<task::StartRequest>("first")).code, ttrpc::kOk);
  agent.create_delay_ms = 3000;
  std::thread slow([&] {
    auto c2 = client();
    create(*c2, "second");
  });
  while (agent.creates.load() < 2) std::this_thread::sleep_for(5ms);  // "second" is inside the agent now
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(call(*c, "State", req<task::StateRequest>("first")).code, ttrpc::kOk);
  EXPECT_EQ(call(*c, "Stats", req<task::StatsRequest>("first")).code, ttrpc::kOk);
  EXPECT_EQ(call(*c, "Pids", req<task::PidsRequest>("first")).code, ttrpc::kOk);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s) << "calls on another task waited for the slow Create";
  slow.join();
}

TEST_F(TaskServiceTest, ContainerdsDeadlineReachesTheAgentCall) {
  auto c = client();
  create(*c, "d1");
  agent.pids_delay_ms = 10000;
  auto t0 = std::chrono::steady_clock::now();
  auto r = c->call("containerd.task.v2.Task", "Pids", req<task::PidsRequest>("d1").SerializeAsString(), 500ms);
  (void)r;
  // The agent call carried containerd's half second, not our minute (or nothing).
  EXPECT_GE(agent.pids_deadline_ms.load(), 0);
  EXPECT_LE(agent.pids_deadline_ms.load(), 600);
  // Without a deadline from containerd, an agent call still has ours.
  agent.pids_delay_ms = 0;
  (void)call(*c, "Pids", req<task::PidsRequest>("d1"), 100s);
  EXPECT_GT(agent.pids_deadline_ms.load(), 30000);
  EXPECT_LE(agent.pids_deadline_ms.load(), 60000);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_F(TaskServiceTest, CallsRacingTheLastDeleteNeverUseAStoppedSandbox) {
  for (int round = 0; round < 5; round++) {
    auto c = client();
    std::string id = "race" + std::to_string(round);
    create(*c, id);
    ASSERT_EQ(call(*c, "Start", req<task::StartRequest>(id)).code, ttrpc::kOk);
    auto kill = req<task::KillRequest>(id);
    kill.set_signal(9);
    ASSERT_EQ(call(*c, "Kill", kill).code, ttrpc::kOk);
    (void)call(*c, "Wait", req<task::WaitRequest>(id));
    std::atomic<bool> go{false};
    std::vector<std::thread> racers;
    for (int i = 0; i < 4; i++)
      racers.emplace_back([&, i] {
        auto rc = client();
        while (!go) std::this_thread::yield();
        for (int k = 0; k < 20; k++) {
          auto r = rc->call("containerd.task.v2.Task", i % 2 ? "Stats" : "Kill",
                            i % 2 ? req<task::StatsRequest>(id).SerializeAsString() : kill.SerializeAsString(), 5s);
          ASSERT_TRUE(r);
          // Served, or told the task is gone / the sandbox went: never a crash or a hang.
          EXPECT_TRUE(r->code == ttrpc::kOk || r->code == ttrpc::wire(ErrorCode::kNotFound) || r->code == ttrpc::wire(ErrorCode::kUnavailable) ||
                      r->code == ttrpc::wire(ErrorCode::kCancelled) || r->code == ttrpc::wire(ErrorCode::kUnknown))
              << r->code << " " << r->message;
        }
      });
    go = true;
    EXPECT_EQ(call(*c, "Delete", req<task::DeleteRequest>(id)).code, ttrpc::kOk);
    for (auto& t : racers) t.join();
  }
  EXPECT_EQ(stops.load(), 5);
}

TEST_F(TaskServiceTest, OomEventsAreRepublishedOnlyForThisShimsTasks) {
  auto c = client();
  create(*c, "mine");
  agent.oom("someone-elses");
  agent.oom("mine");
  for (int i = 0; i < 200; i++) {
    {
      std::lock_guard lk(events.mu);
      if (!events.oom_ids.empty()) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  std::this_thread::sleep_for(100ms);
  std::lock_guard lk(events.mu);
  EXPECT_EQ(events.oom_ids, std::vector<std::string>{"mine"});
}

TEST_F(TaskServiceTest, BadIdsAndBundlesAreRefusedWithTheReason) {
  auto c = client();
  task::CreateTaskRequest r;
  r.set_id("../escape");
  r.set_bundle(bundle("x"));
  auto rep = call(*c, "Create", r);
  EXPECT_EQ(rep.code, ttrpc::wire(ErrorCode::kInvalidArgument));
  EXPECT_NE(rep.message.find("not a valid identifier"), std::string::npos) << rep.message;
  r.set_id("ok1");
  std::ofstream(r.bundle() + "/config.json") << R"({"root": {"path": "../../etc"}})";
  rep = call(*c, "Create", r);
  EXPECT_EQ(rep.code, ttrpc::wire(ErrorCode::kInvalidArgument));
  EXPECT_NE(rep.message.find(".."), std::string::npos) << rep.message;
  EXPECT_EQ(stops.load(), 0);  // nothing was booted for either
}

}  // namespace
}  // namespace husk::shim
