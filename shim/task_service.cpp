#include "shim/task_service.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <filesystem>
#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "github.com/containerd/containerd/api/types/task/task.pb.h"

#include "common/log.h"
#include "guest-agent/oci/spec.h"
#include "github.com/containerd/cgroups/v2/stats/metrics.pb.h"
#include "github.com/containerd/containerd/api/events/task.pb.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb.h"

namespace husk::shim {

namespace task = containerd::task::v2;
namespace ev = containerd::events;
namespace types = containerd::v1::types;
namespace v1 = agent::v1;
using ttrpc::Reply;

namespace {

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

constexpr const char* kTaskService = "containerd.task.v2.Task";

// Agent (gRPC) status → ttrpc status with the same code and message.
Reply from_grpc(const grpc::Status& s) { return Reply::error(static_cast<int32_t>(s.error_code()), s.error_message()); }

template <class M>
bool parse(const std::string& payload, M* m) {
  return m->ParseFromString(payload);
}

Reply bad_request() { return Reply::error(ttrpc::kInvalidArgument, "request does not parse"); }

Reply empty_ok() { return Reply::ok(v1::Empty().SerializeAsString()); }

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void set_time(google::protobuf::Timestamp* t, const timespec& ts) {
  t->set_seconds(ts.tv_sec);
  t->set_nanos(static_cast<int32_t>(ts.tv_nsec));
}

// containerd's rootfs mounts (overlay or bind) onto <bundle>/rootfs.
Status mount_rootfs(const task::CreateTaskRequest& req, const std::string& target) {
  for (const auto& m : req.rootfs()) {
    auto opts = agent::oci::parse_mount_options({m.options().begin(), m.options().end()});
    if (!opts) return make_error("rootfs mount options: %s", opts.error().message.c_str());
    std::string type = m.type() == "bind" ? "" : m.type();
    if (mount(m.source().c_str(), target.c_str(), type.empty() ? nullptr : type.c_str(), opts->flags,
              opts->data.empty() ? nullptr : opts->data.c_str()) != 0)
      return make_error("mounting the rootfs (%s %s) on %s: %s", m.type().c_str(), m.source().c_str(), target.c_str(),
                        strerror(errno));
    for (unsigned long p : opts->propagation)
      if (mount(nullptr, target.c_str(), nullptr, p, nullptr) != 0)
        return make_error("rootfs propagation on %s: %s", target.c_str(), strerror(errno));
  }
  return {};
}

// containerd's identifier rule (alphanumerics separated by single '.', '_' or '-', at most 76
// characters); ids become path components here, so the shim checks it too.
Status check_id(const std::string& id) {
  bool ok = !id.empty() && id.size() <= 76 && std::isalnum(static_cast<unsigned char>(id.front())) &&
            std::isalnum(static_cast<unsigned char>(id.back()));
  for (size_t i = 0; ok && i < id.size(); i++) {
    unsigned char c = static_cast<unsigned char>(id[i]);
    if (std::isalnum(c)) continue;
    ok = (c == '.' || c == '_' || c == '-') && std::isalnum(static_cast<unsigned char>(id[i + 1]));
  }
  if (!ok) return make_error("task id \"%s\" is not a valid identifier", id.c_str());
  return {};
}

}  // namespace

struct TaskService::Proc {
  std::string container_id, exec_id, bundle;
  uint32_t pid = 0;
  std::string stdin_path, stdout_path, stderr_path;
  bool terminal = false;
  std::string process_json;  // exec: the OCI Process
  ProcessState st;           // guarded by mu
  std::mutex mu;
  std::condition_variable cv;
  std::thread out, err, waiter;
  std::shared_ptr<grpc::ClientContext> out_ctx, err_ctx, in_ctx;

  std::string name() const { return exec_id.empty() ? container_id : exec_id; }
  v1::ProcessRequest request() const {
    v1::ProcessRequest r;
    r.set_container_id(container_id);
    r.set_exec_id(exec_id);
    return r;
  }
  v1::ContainerRequest container() const {
    v1::ContainerRequest r;
    r.set_container_id(container_id);
    return r;
  }
  ~Proc() {
    for (auto* ctx : {out_ctx.get(), err_ctx.get(), in_ctx.get()})
      if (ctx) ctx->TryCancel();
    for (auto* t : {&out, &err, &waiter}) {
      if (!t->joinable()) continue;
      // The waiter may hold the last reference after Delete erased the process.
      if (t->get_id() == std::this_thread::get_id())
        t->detach();
      else
        t->join();
    }
  }
};

TaskService::TaskService(std::string ns, std::string sandbox_id, Publisher* events, std::function<void()> shutdown)
    : ns_(std::move(ns)), sandbox_id_(std::move(sandbox_id)), events_(events), shutdown_(std::move(shutdown)) {}

TaskService::~TaskService() { teardown(); }

void TaskService::register_with(ttrpc::Server& server) {
  auto reg = [&](const char* name, Reply (TaskService::*fn)(const std::string&)) {
    server.register_method(kTaskService, name, [this, fn](const std::string& p, const ttrpc::CallContext&) { return (this->*fn)(p); });
  };
  reg("Create", &TaskService::create);
  reg("Start", &TaskService::start);
  reg("State", &TaskService::state);
  reg("Wait", &TaskService::wait);
  reg("Kill", &TaskService::kill);
  reg("Delete", &TaskService::del);
  reg("Exec", &TaskService::exec);
  reg("Pids", &TaskService::pids);
  reg("Stats", &TaskService::stats);
  reg("ResizePty", &TaskService::resize_pty);
  reg("CloseIO", &TaskService::close_io);
  reg("Update", &TaskService::update);
  reg("Connect", &TaskService::connect);
  reg("Shutdown", &TaskService::shutdown);
  server.register_method(kTaskService, "Pause", [this](const std::string& p, const ttrpc::CallContext&) { return pause(p, true); });
  server.register_method(kTaskService, "Resume", [this](const std::string& p, const ttrpc::CallContext&) { return pause(p, false); });
  server.register_method(kTaskService, "Checkpoint", [](const std::string&, const ttrpc::CallContext&) {
    return Reply::error(ttrpc::kUnimplemented, "husk does not checkpoint containers");
  });
}

std::shared_ptr<TaskService::Proc> TaskService::find(const std::string& id, const std::string& exec_id, Reply* err) {
  std::lock_guard lk(mu_);
  auto t = tasks_.find(id);
  if (t == tasks_.end()) {
    *err = Reply::error(ttrpc::kNotFound, "task " + id + " not found");
    return nullptr;
  }
  auto it = t->second.procs.find(exec_id);
  if (it == t->second.procs.end()) {
    *err = Reply::error(ttrpc::kNotFound, "process " + exec_id + " not found in task " + id);
    return nullptr;
  }
  return it->second;
}

void TaskService::start_io(const std::shared_ptr<Proc>& p) {
  // Output: agent stream → FIFO. Opened read-write so a reader that goes away never makes a
  // write fail with EPIPE, and the open never blocks.
  auto agent = agent_;
  auto pump = [agent, p](bool is_err) {
    const std::string& path = is_err ? p->stderr_path : p->stdout_path;
    if (path.empty()) return;
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      LOG_WARN("opening %s: %s", path.c_str(), strerror(errno));
      return;
    }
    auto ctx = std::make_shared<grpc::ClientContext>();
    (is_err ? p->err_ctx : p->out_ctx) = ctx;
    (is_err ? p->err : p->out) = std::thread([agent, p, fd, ctx, is_err] {
      auto req = p->request();
      auto r = is_err ? agent->ReadStderr(ctx.get(), req) : agent->ReadStdout(ctx.get(), req);
      v1::IoChunk c;
      while (r->Read(&c)) {
        const std::string& d = c.data();
        for (size_t off = 0; off < d.size();) {
          ssize_t n = ::write(fd, d.data() + off, d.size() - off);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) break;
          off += static_cast<size_t>(n);
        }
      }
      (void)r->Finish();
      close(fd);
    });
  };
  pump(false);
  if (!p->terminal) pump(true);
  if (!p->stdin_path.empty()) {
    // Input: FIFO → agent. The open blocks until containerd's side opens for writing; detached
    // because containerd may never do so.
    // Its call is cancelled when the process is deleted: containerd keeps the FIFO open until
    // then, and an open call holds up the agent's shutdown.
    auto ctx = std::make_shared<grpc::ClientContext>();
    p->in_ctx = ctx;
    std::thread([agent, p, ctx] {
      int fd = open(p->stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return;
      v1::Empty e;
      auto w = agent->WriteStdin(ctx.get(), &e);
      v1::StdinChunk c;
      c.set_container_id(p->container_id);
      c.set_exec_id(p->exec_id);
      w->Write(c);
      char buf[32768];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) {
        c.set_data(std::string(buf, static_cast<size_t>(n)));
        if (!w->Write(c)) break;
      }
      close(fd);
      w->WritesDone();
      (void)w->Finish();
      grpc::ClientContext cctx;
      (void)agent->CloseStdin(&cctx, p->request(), &e);
    }).detach();
  }
}

void TaskService::start_waiter(const std::shared_ptr<Proc>& p) {
  auto agent = agent_;
  p->waiter = std::thread([this, agent, p] {
    grpc::ClientContext ctx;
    v1::WaitProcessResponse resp;
    auto s = agent->WaitProcess(&ctx, p->request(), &resp);
    // The agent answers Wait once its streams delivered everything; let our copies finish
    // writing into the FIFOs before anyone hears of the exit.
    if (p->out.joinable()) p->out.join();
    if (p->err.joinable()) p->err.join();
    timespec at{};
    if (s.ok()) {
      at.tv_sec = resp.exited_at().seconds();
      at.tv_nsec = resp.exited_at().nanos();
    } else {
      clock_gettime(CLOCK_REALTIME, &at);
    }
    ev::TaskExit e;
    {
      std::lock_guard lk(p->mu);
      p->st.exited(s.ok() ? static_cast<uint32_t>(resp.exit_status()) : 255, at);
      e.set_exit_status(p->st.exit_status());
      set_time(e.mutable_exited_at(), p->st.exited_at());
    }
    e.set_container_id(p->container_id);
    e.set_id(p->name());
    e.set_pid(p->pid);
    events_->publish(e);
    events_->drain();
    p->cv.notify_all();
  });
}

void TaskService::watch_oom() {
  oom_ctx_ = std::make_shared<grpc::ClientContext>();
  oom_ = std::thread([this, agent = agent_, ctx = oom_ctx_] {
    auto r = agent->GetOomEvents(ctx.get(), v1::OomEventsRequest());
    v1::OomEvent e;
    while (r->Read(&e)) {
      ev::TaskOOM oom;
      oom.set_container_id(e.container_id());
      events_->publish(oom);
    }
    (void)r->Finish();
  });
}

Status TaskService::start_sandbox(const google::protobuf::Any& options, const nlohmann::json& spec) {
  auto path = config_path_from(options);
  if (!path) return path.error();
  auto config = load_config(*path);
  if (!config) return config.error();
  if (config->log_level == "debug") log::set_level(log::Level::kDebug);
  auto sized = size_for(*config, spec);
  if (!sized) return sized.error();
  LOG_INFO("sandbox %s: %s mode, %u vCPUs, %u MiB", sandbox_id_.c_str(), sized->mode.c_str(), sized->vcpus, sized->memory_mib);
  auto sandbox = make_sandbox(*sized, Sandbox::dir_for(sized->state_dir, ns_, sandbox_id_));
  if (auto s = sandbox->start(); !s) {
    sandbox->stop();
    return s;
  }
  sandbox_ = std::move(sandbox);
  agent_ = v1::Agent::NewStub(sandbox_->channel());
  watch_oom();
  return {};
}

void TaskService::release_rootfs(Task& t) {
  if (t.rootfs.empty()) return;
  if (t.mounted) umount2(t.rootfs.c_str(), MNT_DETACH);
  t.mounted = false;
  // The per-container directory under the sandbox's share (<share>/<id>/rootfs), not a bundle's:
  // left behind, it would keep the sandbox directory from being removed.
  if (t.rootfs != t.bundle + "/rootfs") {
    rmdir(t.rootfs.c_str());
    rmdir(std::filesystem::path(t.rootfs).parent_path().c_str());
  }
  t.rootfs.clear();
}

Reply TaskService::create(const std::string& payload) {
  task::CreateTaskRequest req;
  if (!parse(payload, &req)) return bad_request();
  if (!req.checkpoint().empty()) return Reply::error(ttrpc::kUnimplemented, "husk does not restore checkpoints");
  if (auto s = check_id(req.id()); !s) return Reply::error(ttrpc::kInvalidArgument, s.error().message);
  std::string config_json = read_file(req.bundle() + "/config.json");
  nlohmann::json spec;
  try {
    spec = nlohmann::json::parse(config_json);
  } catch (const nlohmann::json::exception& e) {
    return Reply::error(ttrpc::kInvalidArgument, std::string("config.json: ") + e.what());
  }
  std::lock_guard lk(mu_);
  if (tasks_.count(req.id())) return Reply::error(ttrpc::kAlreadyExists, "task " + req.id() + " already exists");
  bool first = !sandbox_;
  auto t0 = std::chrono::steady_clock::now();
  if (first) {
    if (auto s = start_sandbox(req.options(), spec); !s)
      return Reply::error(ttrpc::kUnavailable, "starting sandbox " + sandbox_id_ + ": " + s.error().message);
    LOG_DEBUG("timing %s: sandbox %.1f ms (%s)", req.id().c_str(), ms_since(t0), sandbox_->timings().c_str());
  }
  auto t1 = std::chrono::steady_clock::now();
  Sandbox::write_pointer(req.bundle(), sandbox_->dir());
  Task t;
  t.bundle = req.bundle();
  // On failure from here on abandon() undoes this container's mount, and the sandbox if it was
  // booted for it.
  std::string target = sandbox_->rootfs_dir(req.id(), req.bundle());
  std::error_code ec;
  std::filesystem::create_directories(target, ec);
  t.rootfs = target;
  if (req.rootfs_size() > 0) {
    if (auto s = mount_rootfs(req, target); !s) {
      t.mounted = true;  // some of the mounts may be on it
      return abandon(t, first, Reply::error(ttrpc::kFailedPrecondition, s.error().message));
    }
    t.mounted = true;
  } else {
    // `ctr run --rootfs DIR`: no mounts, root.path names DIR. Bind it where the sandbox looks.
    std::string root;
    try {
      root = spec.at("root").at("path").get<std::string>();
    } catch (const nlohmann::json::exception& e) {
      return abandon(t, first, Reply::error(ttrpc::kInvalidArgument, std::string("config.json: root.path: ") + e.what()));
    }
    if (root.empty() || root[0] != '/') root = req.bundle() + "/" + root;
    if (root != target) {
      if (mount(root.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
        return abandon(t, first, Reply::error(ttrpc::kFailedPrecondition, "binding " + root + " on " + target + ": " + strerror(errno)));
      t.mounted = true;
    }
  }
  v1::CreateContainerRequest creq;
  creq.set_id(req.id());
  creq.set_config_json(config_json);
  *creq.mutable_rootfs() = sandbox_->rootfs(req.id(), req.bundle());
  bool io = !req.stdin().empty() || !req.stdout().empty() || !req.stderr().empty();
  creq.set_stdio(io ? v1::STDIO_STREAM : v1::STDIO_NULL);
  grpc::ClientContext ctx;
  v1::CreateContainerResponse cresp;
  auto t2 = std::chrono::steady_clock::now();
  if (auto s = agent_->CreateContainer(&ctx, creq, &cresp); !s.ok()) return abandon(t, first, from_grpc(s));
  LOG_DEBUG("timing %s: rootfs %.1f ms, agent create %.1f ms", req.id().c_str(),
            std::chrono::duration<double, std::milli>(t2 - t1).count(), ms_since(t2));
  auto p = std::make_shared<Proc>();
  p->container_id = req.id();
  p->bundle = req.bundle();
  p->pid = static_cast<uint32_t>(cresp.pid());
  p->stdin_path = req.stdin();
  p->stdout_path = req.stdout();
  p->stderr_path = req.stderr();
  p->terminal = req.terminal();
  t.procs[""] = p;
  tasks_[req.id()] = std::move(t);
  start_io(p);
  ev::TaskCreate e;
  e.set_container_id(req.id());
  e.set_bundle(req.bundle());
  *e.mutable_rootfs() = req.rootfs();
  e.mutable_io()->set_stdin(req.stdin());
  e.mutable_io()->set_stdout(req.stdout());
  e.mutable_io()->set_stderr(req.stderr());
  e.mutable_io()->set_terminal(req.terminal());
  e.set_pid(p->pid);
  events_->publish(e);
  task::CreateTaskResponse resp;
  resp.set_pid(p->pid);
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::abandon(Task& t, bool first, Reply r) {
  release_rootfs(t);
  if (first && tasks_.empty()) stop_sandbox();
  return r;
}

void TaskService::stop_sandbox() {
  if (oom_ctx_) oom_ctx_->TryCancel();
  if (sandbox_) sandbox_->stop();  // ends every agent stream: waiters and pumps return
  if (oom_.joinable()) oom_.join();
  oom_ctx_.reset();
  sandbox_.reset();
  agent_.reset();
}

Reply TaskService::start(const std::string& payload) {
  task::StartRequest req;
  std::shared_ptr<Proc> p;
  if (Reply err; !begin_call(payload, &req, &p, &err)) return err;
  {
    std::lock_guard lk(p->mu);
    ProcessState next = p->st;  // the transition happens once the agent started it
    if (auto s = next.start(); !s) return Reply::error(ttrpc::kFailedPrecondition, s.error().message);
  }
  grpc::ClientContext ctx;
  v1::Empty e;
  if (req.exec_id().empty()) {
    auto t0 = std::chrono::steady_clock::now();
    if (auto s = agent_->StartContainer(&ctx, p->container(), &e); !s.ok()) {
      // The init is gone (its exec failed): like runc's shim, report its exit so the task
      // becomes stopped and can be deleted, instead of staying "created" for ever.
      start_waiter(p);
      return from_grpc(s);
    }
    LOG_DEBUG("timing %s: agent start %.1f ms", p->container_id.c_str(), ms_since(t0));
    {
      std::lock_guard lk(p->mu);
      (void)p->st.start();
    }
    ev::TaskStart ts;
    ts.set_container_id(p->container_id);
    ts.set_pid(p->pid);
    events_->publish(ts);
  } else {
    v1::ExecProcessRequest er;
    er.set_container_id(p->container_id);
    er.set_exec_id(req.exec_id());
    er.set_process_json(p->process_json);
    bool io = !p->stdin_path.empty() || !p->stdout_path.empty() || !p->stderr_path.empty();
    er.set_stdio(io ? v1::STDIO_STREAM : v1::STDIO_NULL);
    v1::ExecProcessResponse resp;
    if (auto s = agent_->ExecProcess(&ctx, er, &resp); !s.ok()) return from_grpc(s);
    {
      std::lock_guard lk(p->mu);
      p->pid = static_cast<uint32_t>(resp.pid());
      (void)p->st.start();
    }
    start_io(p);
    ev::TaskExecStarted es;
    es.set_container_id(p->container_id);
    es.set_exec_id(req.exec_id());
    es.set_pid(p->pid);
    events_->publish(es);
  }
  start_waiter(p);
  task::StartResponse resp;
  resp.set_pid(p->pid);
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::state(const std::string& payload) {
  task::StateRequest req;
  std::shared_ptr<Proc> p;
  if (Reply err; !begin_call(payload, &req, &p, &err)) return err;
  task::StateResponse resp;
  resp.set_id(p->name());
  resp.set_exec_id(req.exec_id());
  resp.set_bundle(p->bundle);
  resp.set_stdin(p->stdin_path);
  resp.set_stdout(p->stdout_path);
  resp.set_stderr(p->stderr_path);
  resp.set_terminal(p->terminal);
  std::lock_guard lk(p->mu);
  resp.set_pid(p->pid);
  switch (p->st.status()) {
    case ProcessState::Status::kCreated: resp.set_status(types::CREATED); break;
    case ProcessState::Status::kRunning: resp.set_status(types::RUNNING); break;
    case ProcessState::Status::kPaused: resp.set_status(types::PAUSED); break;
    case ProcessState::Status::kStopped:
    case ProcessState::Status::kDeleted:
      resp.set_status(types::STOPPED);
      resp.set_exit_status(p->st.exit_status());
      set_time(resp.mutable_exited_at(), p->st.exited_at());
      break;
  }
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::wait(const std::string& payload) {
  task::WaitRequest req;
  std::shared_ptr<Proc> p;
  if (Reply err; !begin_call(payload, &req, &p, &err)) return err;
  std::unique_lock lk(p->mu);
  p->cv.wait(lk, [&] { return p->st.status() == ProcessState::Status::kStopped || p->st.status() == ProcessState::Status::kDeleted; });
  task::WaitResponse resp;
  resp.set_exit_status(p->st.exit_status());
  set_time(resp.mutable_exited_at(), p->st.exited_at());
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::kill(const std::string& payload) {
  task::KillRequest req;
  std::shared_ptr<Proc> p;
  if (Reply err; !begin_call(payload, &req, &p, &err)) return err;
  grpc::ClientContext ctx;
  v1::SignalProcessRequest sr;
  sr.set_container_id(p->container_id);
  sr.set_exec_id(req.exec_id());
  sr.set_signal(static_cast<int32_t>(req.signal()));
  sr.set_all(req.all());
  v1::Empty e;
  if (auto s = agent_->SignalProcess(&ctx, sr, &e); !s.ok()) return from_grpc(s);
  return empty_ok();
}

Reply TaskService::del(const std::string& payload) {
  task::DeleteRequest req;
  std::shared_ptr<Proc> p;
  if (Reply err; !begin_call(payload, &req, &p, &err)) return err;
  task::DeleteResponse resp;
  {
    std::lock_guard lk(p->mu);
    if (auto s = p->st.remove(); !s) return Reply::error(ttrpc::kFailedPrecondition, s.error().message);
    resp.set_pid(p->pid);
    resp.set_exit_status(p->st.exit_status());
    set_time(resp.mutable_exited_at(), p->st.exited_at());
  }
  p->cv.notify_all();  // a Wait on a process deleted before it ever started
  if (p->in_ctx) p->in_ctx->TryCancel();
  if (!req.exec_id().empty()) {
    std::lock_guard lk(mu_);
    if (auto t = tasks_.find(req.id()); t != tasks_.end()) t->second.procs.erase(req.exec_id());
    return Reply::ok(resp.SerializeAsString());
  }
  auto t0 = std::chrono::steady_clock::now();
  {
    grpc::ClientContext ctx;
    v1::RemoveContainerRequest rr;
    rr.set_container_id(req.id());
    rr.set_force(true);  // a created-but-never-started init is still waiting for START
    v1::Empty e;
    if (auto s = agent_->RemoveContainer(&ctx, rr, &e); !s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND)
      return from_grpc(s);
  }
  Task t;
  bool last;
  {
    std::lock_guard lk(mu_);
    if (auto it = tasks_.find(req.id()); it != tasks_.end()) {
      t = std::move(it->second);
      tasks_.erase(it);
    }
    release_rootfs(t);
    last = tasks_.empty();
    if (last) stop_sandbox();
  }
  LOG_DEBUG("timing %s: delete %.1f ms%s", req.id().c_str(), ms_since(t0), last ? " (with the sandbox)" : "");
  t.procs.clear();
  ev::TaskDelete d;
  d.set_container_id(req.id());
  d.set_pid(resp.pid());
  d.set_exit_status(resp.exit_status());
  *d.mutable_exited_at() = resp.exited_at();
  d.set_id(req.id());
  events_->publish(d);
  events_->drain();
  return Reply::ok(resp.SerializeAsString());
}

void TaskService::teardown() {
  std::map<std::string, Task> tasks;
  {
    std::lock_guard lk(mu_);
    tasks.swap(tasks_);
    stop_sandbox();
    for (auto& [id, t] : tasks) release_rootfs(t);
  }
  tasks.clear();  // joins the process threads, whose streams ended with the sandbox
}

Reply TaskService::exec(const std::string& payload) {
  task::ExecProcessRequest req;
  if (!req.ParseFromString(payload)) return bad_request();
  // The exec does not exist yet: only the task has to.
  Reply err;
  auto init = find(req.id(), "", &err);
  if (!init) return err;
  {
    std::lock_guard lk(init->mu);
    if (auto s = init->st.check_exec(); !s) return Reply::error(ttrpc::kFailedPrecondition, s.error().message);
  }
  if (req.exec_id().empty()) return Reply::error(ttrpc::kInvalidArgument, "exec_id is empty");
  std::lock_guard lk(mu_);
  auto t = tasks_.find(req.id());  // deleted since find()?
  if (t == tasks_.end()) return Reply::error(ttrpc::kNotFound, "task " + req.id() + " not found");
  auto& procs = t->second.procs;
  if (procs.count(req.exec_id())) return Reply::error(ttrpc::kAlreadyExists, "exec " + req.exec_id() + " already exists");
  auto p = std::make_shared<Proc>();
  p->container_id = req.id();
  p->exec_id = req.exec_id();
  p->bundle = init->bundle;
  p->stdin_path = req.stdin();
  p->stdout_path = req.stdout();
  p->stderr_path = req.stderr();
  p->terminal = req.terminal();
  p->process_json = req.spec().value();  // JSON, type_url .../runtime-spec/1/Process
  procs[req.exec_id()] = p;
  ev::TaskExecAdded e;
  e.set_container_id(req.id());
  e.set_exec_id(req.exec_id());
  events_->publish(e);
  return empty_ok();
}

Reply TaskService::pids(const std::string& payload) {
  task::PidsRequest req;
  std::shared_ptr<Proc> p;
  if (Reply err; !begin_call(payload, &req, &p, &err)) return err;
  grpc::ClientContext ctx;
  v1::ContainerRequest cr = p->container();
  v1::ListProcessesResponse lr;
  if (auto s = agent_->ListProcesses(&ctx, cr, &lr); !s.ok()) return from_grpc(s);
  task::PidsResponse resp;
  for (const auto& pi : lr.processes()) resp.add_processes()->set_pid(static_cast<uint32_t>(pi.pid()));
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::stats(const std::string& payload) {
  task::StatsRequest req;
  std::shared_ptr<Proc> p;
  if (Reply err; !begin_call(payload, &req, &p, &err)) return err;
  grpc::ClientContext ctx;
  v1::ContainerRequest cr = p->container();
  v1::ContainerStats st;
  if (auto s = agent_->StatsContainer(&ctx, cr, &st); !s.ok()) return from_grpc(s);
  io::containerd::cgroups::v2::Metrics m;
  m.mutable_pids()->set_current(st.pids().current());
  m.mutable_pids()->set_limit(st.pids().limit());
  auto* c = m.mutable_cpu();
  c->set_usage_usec(st.cpu().usage_usec());
  c->set_user_usec(st.cpu().user_usec());
  c->set_system_usec(st.cpu().system_usec());
  c->set_nr_periods(st.cpu().nr_periods());
  c->set_nr_throttled(st.cpu().nr_throttled());
  c->set_throttled_usec(st.cpu().throttled_usec());
  auto* mem = m.mutable_memory();
  const auto& sm = st.memory();
  mem->set_anon(sm.anon());
  mem->set_file(sm.file());
  mem->set_kernel_stack(sm.kernel_stack());
  mem->set_slab(sm.slab());
  mem->set_sock(sm.sock());
  mem->set_shmem(sm.shmem());
  mem->set_file_mapped(sm.file_mapped());
  mem->set_file_dirty(sm.file_dirty());
  mem->set_file_writeback(sm.file_writeback());
  mem->set_anon_thp(sm.anon_thp());
  mem->set_inactive_anon(sm.inactive_anon());
  mem->set_active_anon(sm.active_anon());
  mem->set_inactive_file(sm.inactive_file());
  mem->set_active_file(sm.active_file());
  mem->set_unevictable(sm.unevictable());
  mem->set_slab_reclaimable(sm.slab_reclaimable());
  mem->set_slab_unreclaimable(sm.slab_unreclaimable());
  mem->set_pgfault(sm.pgfault());
  mem->set_pgmajfault(sm.pgmajfault());
  mem->set_usage(sm.usage());
  mem->set_usage_limit(sm.usage_limit());
  mem->set_swap_usage(sm.swap_usage());
  mem->set_swap_limit(sm.swap_limit());
  auto* me = m.mutable_memory_events();
  me->set_low(st.memory_events().low());
  me->set_high(st.memory_events().high());
  me->set_max(st.memory_events().max());
  me->set_oom(st.memory_events().oom());
  me->set_oom_kill(st.memory_events().oom_kill());
  for (const auto& e : st.io()) {
    auto* u = m.mutable_io()->add_usage();
    u->set_major(e.major());
    u->set_minor(e.minor());
    u->set_rbytes(e.rbytes());
    u->set_wbytes(e.wbytes());
    u->set_rios(e.rios());
    u->set_wios(e.wios());
  }
  task::StatsResponse resp;
  resp.mutable_stats()->set_type_url("io.containerd.cgroups.v2.Metrics");
  resp.mutable_stats()->set_value(m.SerializeAsString());
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::pause(const std::string& payload, bool frozen) {
  task::PauseRequest req;  // PauseRequest and ResumeRequest both carry only the id
  std::shared_ptr<Proc> p;
  if (Reply err; !begin_call(payload, &req, &p, &err)) return err;
  {
    std::lock_guard lk(p->mu);
    ProcessState next = p->st;
    if (auto s = frozen ? next.pause() : next.resume(); !s) return Reply::error(ttrpc::kFailedPrecondition, s.error().message);
  }
  grpc::ClientContext ctx;
  v1::Empty e;
  auto s = frozen ? agent_->PauseContainer(&ctx, p->container(), &e) : agent_->ResumeContainer(&ctx, p->container(), &e);
  if (!s.ok()) return from_grpc(s);
  {
    std::lock_guard lk(p->mu);
    (void)(frozen ? p->st.pause() : p->st.resume());  // may have exited meanwhile: then it stays stopped
  }
  if (frozen) {
    ev::TaskPaused ev_;
    ev_.set_container_id(p->container_id);
    events_->publish(ev_);
  } else {
    ev::TaskResumed ev_;
    ev_.set_container_id(p->container_id);
    events_->publish(ev_);
  }
  return empty_ok();
}

Reply TaskService::resize_pty(const std::string& payload) {
  task::ResizePtyRequest req;
  std::shared_ptr<Proc> p;
  if (Reply err; !begin_call(payload, &req, &p, &err)) return err;
  grpc::ClientContext ctx;
  v1::ResizePtyRequest rr;
  rr.set_container_id(p->container_id);
  rr.set_exec_id(req.exec_id());
  rr.set_rows(req.height());
  rr.set_cols(req.width());
  v1::Empty e;
  if (auto s = agent_->ResizePty(&ctx, rr, &e); !s.ok()) return from_grpc(s);
  return empty_ok();
}

Reply TaskService::close_io(const std::string& payload) {
  task::CloseIORequest req;
  std::shared_ptr<Proc> p;
  if (Reply err; !begin_call(payload, &req, &p, &err)) return err;
  // The stdin copier closes the process's stdin when containerd's FIFO reaches EOF; this only
  // has to make sure it happens even if containerd keeps the FIFO open.
  if (req.stdin()) {
    grpc::ClientContext ctx;
    v1::Empty e;
    (void)agent_->CloseStdin(&ctx, p->request(), &e);
  }
  return empty_ok();
}

Reply TaskService::update(const std::string& payload) {
  task::UpdateTaskRequest req;
  std::shared_ptr<Proc> p;
  if (Reply err; !begin_call(payload, &req, &p, &err)) return err;
  grpc::ClientContext ctx;
  v1::UpdateContainerRequest ur;
  ur.set_container_id(p->container_id);
  ur.set_resources_json(req.resources().value());  // JSON LinuxResources
  v1::Empty e;
  if (auto s = agent_->UpdateContainer(&ctx, ur, &e); !s.ok()) return from_grpc(s);
  return empty_ok();
}

Reply TaskService::connect(const std::string& payload) {
  task::ConnectRequest req;
  if (!parse(payload, &req)) return bad_request();
  task::ConnectResponse resp;
  resp.set_shim_pid(static_cast<uint32_t>(getpid()));
  {
    std::lock_guard lk(mu_);
    auto t = tasks_.find(req.id());
    if (t != tasks_.end() && t->second.procs.count("")) resp.set_task_pid(t->second.procs.at("")->pid);
  }
  resp.set_version("husk 0.1.0");
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::shutdown(const std::string& payload) {
  task::ShutdownRequest req;
  if (!parse(payload, &req)) return bad_request();
  {
    std::lock_guard lk(mu_);
    if (!tasks_.empty() && !req.now()) return empty_ok();  // other containers of the pod remain
  }
  shutdown_();
  return empty_ok();
}

}  // namespace husk::shim
