#include "shim/task_service.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

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

}  // namespace

struct TaskService::Proc {
  std::string exec_id;
  uint32_t pid = 0;
  std::string stdin_path, stdout_path, stderr_path;
  bool terminal = false;
  std::string process_json;  // exec: the OCI Process
  enum { kCreated, kRunning, kStopped } status = kCreated;
  uint32_t exit_status = 0;
  timespec exited_at{};
  std::mutex mu;
  std::condition_variable cv;
  std::thread out, err, waiter;
  std::shared_ptr<grpc::ClientContext> out_ctx, err_ctx;

  ~Proc() {
    for (auto* ctx : {out_ctx.get(), err_ctx.get()})
      if (ctx) ctx->TryCancel();
    for (auto* t : {&out, &err, &waiter})
      if (t->joinable()) t->join();
  }
};

TaskService::TaskService(Config config, std::string ns, std::string id, Publisher* events, std::function<void()> shutdown)
    : config_(std::move(config)), ns_(std::move(ns)), id_(std::move(id)), events_(events), shutdown_(std::move(shutdown)) {}

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

v1::ContainerRequest TaskService::container_request() const {
  v1::ContainerRequest r;
  r.set_container_id(id_);
  return r;
}

v1::ProcessRequest TaskService::process_request(const std::string& exec_id) const {
  v1::ProcessRequest r;
  r.set_container_id(id_);
  r.set_exec_id(exec_id);
  return r;
}

std::shared_ptr<TaskService::Proc> TaskService::find(const std::string& id, const std::string& exec_id, Reply* err) {
  std::lock_guard lk(mu_);
  if (id != id_ || !agent_) {
    *err = Reply::error(ttrpc::kNotFound, "task " + id + " not found");
    return nullptr;
  }
  auto it = procs_.find(exec_id);
  if (it == procs_.end()) {
    *err = Reply::error(ttrpc::kNotFound, "process " + exec_id + " not found in task " + id);
    return nullptr;
  }
  return it->second;
}

void TaskService::start_io(const std::shared_ptr<Proc>& p) {
  // Output: agent stream → FIFO. Opened read-write so a reader that goes away never makes a
  // write fail with EPIPE, and the open never blocks.
  auto pump = [this, p](bool is_err) {
    const std::string& path = is_err ? p->stderr_path : p->stdout_path;
    if (path.empty()) return;
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      LOG_WARN("opening %s: %s", path.c_str(), strerror(errno));
      return;
    }
    auto ctx = std::make_shared<grpc::ClientContext>();
    (is_err ? p->err_ctx : p->out_ctx) = ctx;
    (is_err ? p->err : p->out) = std::thread([this, p, fd, ctx, is_err] {
      auto req = process_request(p->exec_id);
      auto r = is_err ? agent_->ReadStderr(ctx.get(), req) : agent_->ReadStdout(ctx.get(), req);
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
    std::thread([this, p] {
      int fd = open(p->stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return;
      grpc::ClientContext ctx;
      v1::Empty e;
      auto w = agent_->WriteStdin(&ctx, &e);
      v1::StdinChunk c;
      c.set_container_id(id_);
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
      (void)agent_->CloseStdin(&cctx, process_request(p->exec_id), &e);
    }).detach();
  }
}

void TaskService::start_waiter(const std::shared_ptr<Proc>& p) {
  p->waiter = std::thread([this, p] {
    grpc::ClientContext ctx;
    v1::WaitProcessResponse resp;
    auto s = agent_->WaitProcess(&ctx, process_request(p->exec_id), &resp);
    // The agent answers Wait once its streams delivered everything; let our copies finish
    // writing into the FIFOs before anyone hears of the exit.
    if (p->out.joinable()) p->out.join();
    if (p->err.joinable()) p->err.join();
    {
      std::lock_guard lk(p->mu);
      p->status = Proc::kStopped;
      p->exit_status = s.ok() ? static_cast<uint32_t>(resp.exit_status()) : 255;
      if (s.ok()) {
        p->exited_at.tv_sec = resp.exited_at().seconds();
        p->exited_at.tv_nsec = resp.exited_at().nanos();
      } else {
        clock_gettime(CLOCK_REALTIME, &p->exited_at);
      }
    }
    ev::TaskExit e;
    e.set_container_id(id_);
    e.set_id(p->exec_id.empty() ? id_ : p->exec_id);
    e.set_pid(p->pid);
    e.set_exit_status(p->exit_status);
    set_time(e.mutable_exited_at(), p->exited_at);
    events_->publish(e);
    events_->drain();
    p->cv.notify_all();
  });
}

void TaskService::watch_oom() {
  oom_ctx_ = std::make_shared<grpc::ClientContext>();
  oom_ = std::thread([this, ctx = oom_ctx_] {
    auto r = agent_->GetOomEvents(ctx.get(), v1::OomEventsRequest());
    v1::OomEvent e;
    while (r->Read(&e)) {
      ev::TaskOOM oom;
      oom.set_container_id(e.container_id());
      events_->publish(oom);
    }
    (void)r->Finish();
  });
}

Reply TaskService::create(const std::string& payload) {
  task::CreateTaskRequest req;
  if (!parse(payload, &req)) return bad_request();
  if (!req.checkpoint().empty()) return Reply::error(ttrpc::kUnimplemented, "husk does not restore checkpoints");
  std::lock_guard lk(mu_);
  if (agent_) return Reply::error(ttrpc::kAlreadyExists, "task " + req.id() + " already exists");
  id_ = req.id();
  bundle_ = req.bundle();
  std::string rootfs = bundle_ + "/rootfs";
  std::string config_json = read_file(bundle_ + "/config.json");
  if (req.rootfs_size() > 0) {
    if (auto s = mount_rootfs(req, rootfs); !s) return Reply::error(ttrpc::kFailedPrecondition, s.error().message);
    rootfs_mounted_ = true;
  } else {
    // `ctr run --rootfs DIR`: no mounts, root.path names DIR. Bind it to <bundle>/rootfs so
    // both sandbox kinds find the root in one place (virtiofsd exports the bundle).
    std::string root;
    try {
      root = nlohmann::json::parse(config_json).at("root").at("path").get<std::string>();
    } catch (const nlohmann::json::exception& e) {
      return Reply::error(ttrpc::kInvalidArgument, std::string("config.json: root.path: ") + e.what());
    }
    if (!root.empty() && root[0] == '/' && root != rootfs) {
      mkdir(rootfs.c_str(), 0755);
      if (mount(root.c_str(), rootfs.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
        return Reply::error(ttrpc::kFailedPrecondition, "binding " + root + " on " + rootfs + ": " + strerror(errno));
      rootfs_mounted_ = true;
    }
  }
  sandbox_ = make_sandbox(config_, bundle_, id_);
  if (auto s = sandbox_->start(); !s) {
    sandbox_->stop();
    sandbox_.reset();
    if (rootfs_mounted_) umount2(rootfs.c_str(), MNT_DETACH);
    rootfs_mounted_ = false;
    return Reply::error(ttrpc::kUnavailable, "starting the sandbox: " + s.error().message);
  }
  agent_ = v1::Agent::NewStub(sandbox_->channel());
  v1::CreateContainerRequest creq;
  creq.set_id(id_);
  creq.set_config_json(config_json);
  *creq.mutable_rootfs() = sandbox_->rootfs();
  bool io = !req.stdin().empty() || !req.stdout().empty() || !req.stderr().empty();
  creq.set_stdio(io ? v1::STDIO_STREAM : v1::STDIO_NULL);
  grpc::ClientContext ctx;
  v1::CreateContainerResponse cresp;
  auto s = agent_->CreateContainer(&ctx, creq, &cresp);
  if (!s.ok()) {
    agent_.reset();
    sandbox_->stop();
    sandbox_.reset();
    if (rootfs_mounted_) umount2(rootfs.c_str(), MNT_DETACH);
    rootfs_mounted_ = false;
    return from_grpc(s);
  }
  auto p = std::make_shared<Proc>();
  p->pid = static_cast<uint32_t>(cresp.pid());
  p->stdin_path = req.stdin();
  p->stdout_path = req.stdout();
  p->stderr_path = req.stderr();
  p->terminal = req.terminal();
  procs_[""] = p;
  start_io(p);
  watch_oom();
  ev::TaskCreate e;
  e.set_container_id(id_);
  e.set_bundle(bundle_);
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

Reply TaskService::start(const std::string& payload) {
  task::StartRequest req;
  std::shared_ptr<Proc> p;
  if (Reply err; !begin_call(payload, &req, &p, &err)) return err;
  grpc::ClientContext ctx;
  v1::Empty e;
  if (req.exec_id().empty()) {
    v1::ContainerRequest cr = container_request();
    if (auto s = agent_->StartContainer(&ctx, cr, &e); !s.ok()) return from_grpc(s);
    {
      std::lock_guard lk(p->mu);
      p->status = Proc::kRunning;
    }
    ev::TaskStart ts;
    ts.set_container_id(id_);
    ts.set_pid(p->pid);
    events_->publish(ts);
  } else {
    v1::ExecProcessRequest er;
    er.set_container_id(id_);
    er.set_exec_id(req.exec_id());
    er.set_process_json(p->process_json);
    bool io = !p->stdin_path.empty() || !p->stdout_path.empty() || !p->stderr_path.empty();
    er.set_stdio(io ? v1::STDIO_STREAM : v1::STDIO_NULL);
    v1::ExecProcessResponse resp;
    if (auto s = agent_->ExecProcess(&ctx, er, &resp); !s.ok()) return from_grpc(s);
    {
      std::lock_guard lk(p->mu);
      p->pid = static_cast<uint32_t>(resp.pid());
      p->status = Proc::kRunning;
    }
    start_io(p);
    ev::TaskExecStarted es;
    es.set_container_id(id_);
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
  resp.set_id(req.exec_id().empty() ? id_ : req.exec_id());
  resp.set_exec_id(req.exec_id());
  resp.set_bundle(bundle_);
  resp.set_stdin(p->stdin_path);
  resp.set_stdout(p->stdout_path);
  resp.set_stderr(p->stderr_path);
  resp.set_terminal(p->terminal);
  std::lock_guard lk(p->mu);
  resp.set_pid(p->pid);
  switch (p->status) {
    case Proc::kCreated: resp.set_status(types::CREATED); break;
    case Proc::kStopped:
      resp.set_status(types::STOPPED);
      resp.set_exit_status(p->exit_status);
      set_time(resp.mutable_exited_at(), p->exited_at);
      break;
    case Proc::kRunning: {
      resp.set_status(types::RUNNING);
      if (req.exec_id().empty()) {
        grpc::ClientContext ctx;
        v1::ContainerRequest cr = container_request();
        v1::ContainerState st;
        if (agent_->StateContainer(&ctx, cr, &st).ok() && st.status() == v1::ContainerState::PAUSED)
          resp.set_status(types::PAUSED);
      }
      break;
    }
  }
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::wait(const std::string& payload) {
  task::WaitRequest req;
  std::shared_ptr<Proc> p;
  if (Reply err; !begin_call(payload, &req, &p, &err)) return err;
  std::unique_lock lk(p->mu);
  p->cv.wait(lk, [&] { return p->status == Proc::kStopped; });
  task::WaitResponse resp;
  resp.set_exit_status(p->exit_status);
  set_time(resp.mutable_exited_at(), p->exited_at);
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::kill(const std::string& payload) {
  task::KillRequest req;
  std::shared_ptr<Proc> p;
  if (Reply err; !begin_call(payload, &req, &p, &err)) return err;
  grpc::ClientContext ctx;
  v1::SignalProcessRequest sr;
  sr.set_container_id(id_);
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
  {
    std::lock_guard lk(p->mu);
    if (p->status == Proc::kRunning)
      return Reply::error(ttrpc::kFailedPrecondition, "process " + (req.exec_id().empty() ? id_ : req.exec_id()) + " is still running");
  }
  task::DeleteResponse resp;
  resp.set_pid(p->pid);
  resp.set_exit_status(p->exit_status);
  set_time(resp.mutable_exited_at(), p->exited_at);
  if (!req.exec_id().empty()) {
    std::lock_guard lk(mu_);
    procs_.erase(req.exec_id());
    return Reply::ok(resp.SerializeAsString());
  }
  {
    grpc::ClientContext ctx;
    v1::RemoveContainerRequest rr;
    rr.set_container_id(id_);
    rr.set_force(true);  // a created-but-never-started init is still waiting for START
    v1::Empty e;
    if (auto s = agent_->RemoveContainer(&ctx, rr, &e); !s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND)
      return from_grpc(s);
  }
  teardown();
  ev::TaskDelete d;
  d.set_container_id(id_);
  d.set_pid(resp.pid());
  d.set_exit_status(resp.exit_status());
  *d.mutable_exited_at() = resp.exited_at();
  d.set_id(id_);
  events_->publish(d);
  events_->drain();
  return Reply::ok(resp.SerializeAsString());
}

void TaskService::teardown() {
  std::map<std::string, std::shared_ptr<Proc>> procs;
  std::unique_ptr<Sandbox> sandbox;
  {
    std::lock_guard lk(mu_);
    procs.swap(procs_);
    sandbox = std::move(sandbox_);
  }
  if (oom_ctx_) oom_ctx_->TryCancel();
  if (sandbox) sandbox->stop();  // ends every agent stream: waiters and pumps return
  procs.clear();
  if (oom_.joinable()) oom_.join();
  std::lock_guard lk(mu_);
  agent_.reset();
  if (rootfs_mounted_) {
    umount2((bundle_ + "/rootfs").c_str(), MNT_DETACH);
    rootfs_mounted_ = false;
  }
}

Reply TaskService::exec(const std::string& payload) {
  task::ExecProcessRequest req;
  if (!req.ParseFromString(payload)) return bad_request();
  // The exec does not exist yet: only the task has to.
  if (Reply err; !find(req.id(), "", &err)) return err;
  std::lock_guard lk(mu_);
  if (procs_.count(req.exec_id())) return Reply::error(ttrpc::kAlreadyExists, "exec " + req.exec_id() + " already exists");
  auto p = std::make_shared<Proc>();
  p->exec_id = req.exec_id();
  p->stdin_path = req.stdin();
  p->stdout_path = req.stdout();
  p->stderr_path = req.stderr();
  p->terminal = req.terminal();
  p->process_json = req.spec().value();  // JSON, type_url .../runtime-spec/1/Process
  procs_[req.exec_id()] = p;
  ev::TaskExecAdded e;
  e.set_container_id(id_);
  e.set_exec_id(req.exec_id());
  events_->publish(e);
  return empty_ok();
}

Reply TaskService::pids(const std::string& payload) {
  task::PidsRequest req;
  std::shared_ptr<Proc> p;
  if (Reply err; !begin_call(payload, &req, &p, &err)) return err;
  grpc::ClientContext ctx;
  v1::ContainerRequest cr = container_request();
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
  v1::ContainerRequest cr = container_request();
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
  grpc::ClientContext ctx;
  v1::ContainerRequest cr = container_request();
  v1::Empty e;
  auto s = frozen ? agent_->PauseContainer(&ctx, cr, &e) : agent_->ResumeContainer(&ctx, cr, &e);
  if (!s.ok()) return from_grpc(s);
  if (frozen) {
    ev::TaskPaused ev_;
    ev_.set_container_id(id_);
    events_->publish(ev_);
  } else {
    ev::TaskResumed ev_;
    ev_.set_container_id(id_);
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
  rr.set_container_id(id_);
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
    (void)agent_->CloseStdin(&ctx, process_request(req.exec_id()), &e);
  }
  return empty_ok();
}

Reply TaskService::update(const std::string& payload) {
  task::UpdateTaskRequest req;
  std::shared_ptr<Proc> p;
  if (Reply err; !begin_call(payload, &req, &p, &err)) return err;
  grpc::ClientContext ctx;
  v1::UpdateContainerRequest ur;
  ur.set_container_id(id_);
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
  std::lock_guard lk(mu_);
  if (auto it = procs_.find(""); it != procs_.end()) resp.set_task_pid(it->second->pid);
  resp.set_version("husk 0.1.0");
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::shutdown(const std::string& payload) {
  task::ShutdownRequest req;
  if (!parse(payload, &req)) return bad_request();
  {
    std::lock_guard lk(mu_);
    if (!procs_.empty() && !req.now()) return empty_ok();  // tasks remain
  }
  shutdown_();
  return empty_ok();
}

}  // namespace husk::shim
