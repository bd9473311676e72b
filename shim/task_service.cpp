#include "shim/task_service.h"

#include <unistd.h>

#include <chrono>
#include <thread>
#include <cstring>

#include "common/ids.h"
#include "common/log.h"
#include "github.com/containerd/containerd/api/events/task.pb.h"
#include "github.com/containerd/containerd/api/types/task/task.pb.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb.h"
#include "shim/metrics.h"
#include "shim/rootfs.h"

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

// The one place errors become ttrpc statuses (the codes are gRPC's, which ttrpc shares): ours,
// and the agent's answers, which keep their code and message.
Reply reply(const Error& e) { return Reply::error(static_cast<int32_t>(e.code), e.message); }
Reply reply(const grpc::Status& s) { return reply(Error(s.error_message(), static_cast<ErrorCode>(s.error_code()))); }

Reply empty_ok() { return Reply::ok(v1::Empty().SerializeAsString()); }

// A context for one agent call: containerd's deadline when it gave one, else ours.
std::unique_ptr<grpc::ClientContext> agent_ctx(const ttrpc::CallContext& cc) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  auto ours = std::chrono::steady_clock::now() + TaskService::kAgentCallTimeout;
  auto deadline = std::min(cc.deadline, ours);
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(deadline - std::chrono::steady_clock::now()));
  return ctx;
}

void set_time(google::protobuf::Timestamp* t, const timespec& ts) {
  t->set_seconds(ts.tv_sec);
  t->set_nanos(static_cast<int32_t>(ts.tv_nsec));
}

}  // namespace

TaskService::SandboxFactory TaskService::default_factory() {
  return [](const Config& c, const std::string& dir) -> Result<std::shared_ptr<Sandbox>> {
    auto s = make_sandbox(c, dir);
    if (!s) return s.error();
    return std::shared_ptr<Sandbox>(std::move(s.value()));
  };
}

TaskService::TaskService(std::string ns, std::string sandbox_id, EventSink* events, std::function<void()> shutdown,
                         SandboxFactory factory)
    : ns_(std::move(ns)), sandbox_id_(std::move(sandbox_id)), events_(events), shutdown_(std::move(shutdown)),
      factory_(std::move(factory)) {}

TaskService::~TaskService() { teardown(); }

std::map<std::string, ttrpc::Handler> TaskService::handlers() {
  std::map<std::string, ttrpc::Handler> h;
  auto reg = [&](const char* name, Reply (TaskService::*fn)(const std::string&, const ttrpc::CallContext&)) {
    h[name] = [this, fn](const std::string& p, const ttrpc::CallContext& cc) { return (this->*fn)(p, cc); };
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
  h["Pause"] = [this](const std::string& p, const ttrpc::CallContext& cc) { return pause(p, cc, true); };
  h["Resume"] = [this](const std::string& p, const ttrpc::CallContext& cc) { return pause(p, cc, false); };
  h["Checkpoint"] = [](const std::string&, const ttrpc::CallContext&) {
    return reply(make_error(ErrorCode::kUnimplemented, "husk does not checkpoint containers"));
  };
  return h;
}

Result<TaskService::Call> TaskService::find(const std::string& id, const std::string& exec_id) {
  std::lock_guard lk(mu_);
  auto t = tasks_.find(id);
  if (t == tasks_.end() || !t->second.ready) return make_error(ErrorCode::kNotFound, "task %s not found", id.c_str());
  auto it = t->second.procs.find(exec_id);
  if (it == t->second.procs.end())
    return make_error(ErrorCode::kNotFound, "process %s not found in task %s", exec_id.c_str(), id.c_str());
  return Call{it->second, agent_, sandbox_};
}

Result<TaskService::Call> TaskService::sandbox_for(const google::protobuf::Any& options, const Bundle& bundle) {
  std::lock_guard life(lifecycle_mu_);
  {
    std::lock_guard lk(mu_);
    if (sandbox_) return Call{nullptr, agent_, sandbox_};
  }
  auto path = config_path_from(options);
  if (!path) return path.error();
  auto config = load_config(*path);
  if (!config) return config.error();
  if (config->log_level == "debug") log::set_level(log::Level::kDebug);
  auto sized = size_for(*config, bundle.spec);
  if (!sized) return sized.error();
  if (bundle.host_network && sized->mode == "vm")
    return make_error(ErrorCode::kInvalidArgument,
                      "pod sandbox %s asks for the host's network (hostNetwork: true): its microVM has its own kernel and "
                      "cannot join the host's network namespace; run such pods with a runtime that shares the host kernel",
                      sandbox_id_.c_str());
  sized->netns_path = bundle.netns_path;
  LOG_INFO("sandbox %s: %s mode, %u vCPUs, %u MiB", sandbox_id_.c_str(), sized->mode.c_str(), sized->vcpus, sized->memory_mib);
  auto sandbox = factory_(*sized, Sandbox::dir_for(sized->state_dir, ns_, sandbox_id_));
  if (!sandbox) return sandbox.error();
  if (auto s = (*sandbox)->start(); !s) {
    (*sandbox)->stop();
    return s.error();
  }
  auto agent = std::shared_ptr<AgentStub>(v1::Agent::NewStub((*sandbox)->channel()));
  watch_oom(agent);
  std::lock_guard lk(mu_);
  sandbox_ = std::move(sandbox.value());
  agent_ = agent;
  return Call{nullptr, agent_, sandbox_};
}

void TaskService::watch_oom(std::shared_ptr<AgentStub> agent) {
  auto ctx = std::make_shared<grpc::ClientContext>();
  {
    std::lock_guard lk(mu_);
    oom_ctx_ = ctx;
  }
  oom_ = std::thread([this, agent, ctx] {
    auto r = agent->GetOomEvents(ctx.get(), v1::OomEventsRequest());
    v1::OomEvent e;
    while (r->Read(&e)) {
      // The guest names the container: only ours are passed on (a guest must not make
      // containerd act on another sandbox's task), and the publisher bounds how many wait.
      {
        std::lock_guard lk(mu_);
        if (!tasks_.count(e.container_id())) {
          LOG_WARN_RATELIMITED("oom event for %.80s, not a task of this shim: dropped", e.container_id().c_str());
          continue;
        }
      }
      ev::TaskOOM oom;
      oom.set_container_id(e.container_id());
      events_->publish(oom);
    }
    (void)r->Finish();
  });
}

void TaskService::stop_sandbox_if_unused() {
  std::lock_guard life(lifecycle_mu_);
  std::shared_ptr<Sandbox> sandbox;
  {
    std::lock_guard lk(mu_);
    if (!tasks_.empty() || !sandbox_) return;  // a Create came in meanwhile: it keeps the sandbox
    sandbox = std::move(sandbox_);
    agent_.reset();
    if (oom_ctx_) oom_ctx_->TryCancel();
    oom_ctx_.reset();
  }
  sandbox->stop();  // ends every agent stream: waiters, pumps and the OOM watch return
  if (oom_.joinable()) oom_.join();
}

void TaskService::forget_task(const std::string& id, bool detach) {
  std::shared_ptr<Sandbox> sandbox;
  std::string bundle;
  {
    std::lock_guard lk(mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    bundle = it->second.bundle;
    detach = detach && it->second.attached;
    tasks_.erase(it);
    sandbox = sandbox_;
  }
  if (detach && sandbox) sandbox->detach_rootfs(id, bundle);
  stop_sandbox_if_unused();
}

void TaskService::on_exit(Process& p, Process::Exit e) {
  if (e.agent_lost) {
    // The agent went away (we report 255): if a helper of the sandbox died,
    // say which and how (the VMM killed by its seccomp filter, say), where containerd's log
    // shows it. The helper's exit trails the closed connection by moments.
    std::shared_ptr<Sandbox> sb;
    {
      std::lock_guard lk(mu_);
      sb = sandbox_;
    }
    for (int i = 0; sb && i < 40; ++i) {
      if (auto why = sb->failure(); !why.empty()) {
        LOG_ERROR("task %s (process %s): the sandbox died under it: %s", p.spec().container_id.c_str(), p.name().c_str(), why.c_str());
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ev::TaskExit x;
  x.set_container_id(p.spec().container_id);
  x.set_id(p.name());
  x.set_pid(p.pid());
  x.set_exit_status(e.status);
  set_time(x.mutable_exited_at(), e.at);
  events_->publish(x);
  events_->drain();
}

Reply TaskService::create(const std::string& payload, const ttrpc::CallContext& cc) {
  task::CreateTaskRequest req;
  if (!req.ParseFromString(payload)) return reply(make_error(ErrorCode::kInvalidArgument, "request does not parse"));
  if (!req.checkpoint().empty()) return reply(make_error(ErrorCode::kUnimplemented, "husk does not restore checkpoints"));
  if (auto s = check_id("task id", req.id()); !s) return reply(s.error());
  auto bundle = load_bundle(req.bundle());
  if (!bundle) return reply(bundle.error());
  {
    // The id is reserved now; the slow work below runs without the lock.
    std::lock_guard lk(mu_);
    if (tasks_.count(req.id())) return reply(make_error(ErrorCode::kAlreadyExists, "task %s already exists", req.id().c_str()));
    tasks_[req.id()].bundle = req.bundle();
  }
  auto fail = [&](const Error& e, bool detach) {
    forget_task(req.id(), detach);
    return reply(e);
  };
  auto t0 = std::chrono::steady_clock::now();
  auto call = sandbox_for(req.options(), *bundle);
  if (!call) return fail(call.error().wrap("starting sandbox " + sandbox_id_ + ": "), false);
  LOG_DEBUG("timing %s: sandbox %.1f ms (%s)", req.id().c_str(), ms_since(t0), call->sandbox->timings().c_str());
  auto t1 = std::chrono::steady_clock::now();
  Sandbox::write_pointer(req.bundle(), call->sandbox->dir());

  std::vector<RootfsMount> mounts;
  for (const auto& m : req.rootfs()) mounts.push_back({m.type(), m.source(), {m.options().begin(), m.options().end()}});
  if (mounts.empty()) {
    // `ctr run --rootfs DIR`: no mounts, root.path names DIR. Bind it where the sandbox looks.
    if (bundle->root_path.empty())
      return fail(make_error(ErrorCode::kInvalidArgument, "config.json: no root.path and no rootfs mounts"), false);
    mounts.push_back({"bind", bundle->root_path, {"rbind"}});
  }
  // A host sandbox uses <bundle>/rootfs in place: nothing to attach when that is the root.
  bool in_place = mounts.size() == 1 && mounts[0].type == "bind" &&
                  mounts[0].source == call->sandbox->rootfs(req.id(), req.bundle()).path();
  if (!in_place) {
    {
      std::lock_guard lk(mu_);
      tasks_[req.id()].attached = true;  // some of the mounts may be on it even if this fails
    }
    if (auto s = call->sandbox->attach_rootfs(req.id(), req.bundle(), mounts, bundle->root_readonly,
                                              bundle->root_readonly ? mountpoints_of(*bundle) : std::vector<MountPoint>{});
        !s)
      return fail(make_error(ErrorCode::kFailedPrecondition, "%s", s.error().message.c_str()), true);
  }

  v1::CreateContainerRequest creq;
  creq.set_id(req.id());
  auto guest_config = call->sandbox->guest_config(req.id(), *bundle);
  if (!guest_config) return fail(guest_config.error(), true);
  creq.set_config_json(*guest_config);
  *creq.mutable_rootfs() = call->sandbox->rootfs(req.id(), req.bundle());
  bool io = !req.stdin().empty() || !req.stdout().empty() || !req.stderr().empty();
  creq.set_stdio(io ? v1::STDIO_STREAM : v1::STDIO_NULL);
  auto t2 = std::chrono::steady_clock::now();
  v1::CreateContainerResponse cresp;
  if (auto s = call->agent->CreateContainer(agent_ctx(cc).get(), creq, &cresp); !s.ok())
    return fail(Error(s.error_message(), static_cast<ErrorCode>(s.error_code())), true);
  LOG_DEBUG("timing %s: rootfs %.1f ms, agent create %.1f ms", req.id().c_str(),
            std::chrono::duration<double, std::milli>(t2 - t1).count(), ms_since(t2));

  auto p = std::make_shared<Process>(Process::Spec{req.id(), "", req.bundle(), req.stdin(), req.stdout(), req.stderr(),
                                                   req.terminal(), ""});
  p->set_pid(static_cast<uint32_t>(cresp.pid()));
  {
    std::lock_guard lk(mu_);
    Task& t = tasks_[req.id()];
    t.procs[""] = p;
    t.ready = true;
  }
  p->start_io(call->agent);
  ev::TaskCreate e;
  e.set_container_id(req.id());
  e.set_bundle(req.bundle());
  *e.mutable_rootfs() = req.rootfs();
  e.mutable_io()->set_stdin(req.stdin());
  e.mutable_io()->set_stdout(req.stdout());
  e.mutable_io()->set_stderr(req.stderr());
  e.mutable_io()->set_terminal(req.terminal());
  e.set_pid(p->pid());
  events_->publish(e);
  task::CreateTaskResponse resp;
  resp.set_pid(p->pid());
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::start(const std::string& payload, const ttrpc::CallContext& cc) {
  task::StartRequest req;
  auto call = begin_call(payload, &req);
  if (!call) return reply(call.error());
  auto& p = call->proc;
  // The transition happens once the agent started it.
  if (auto s = p->check([](ProcessState& st) { return st.start(); }); !s)
    return reply(s.error());
  auto exited = [this](Process& proc, Process::Exit e) { on_exit(proc, e); };
  if (req.exec_id().empty()) {
    auto t0 = std::chrono::steady_clock::now();
    v1::ContainerRequest cr;
    cr.set_container_id(req.id());
    v1::Empty e;
    if (auto s = call->agent->StartContainer(agent_ctx(cc).get(), cr, &e); !s.ok()) {
      // The init is gone (its exec failed): like runc's shim, report its exit so the task
      // becomes stopped and can be deleted, instead of staying "created" for ever.
      p->start_waiter(call->agent, exited);
      return reply(s);
    }
    LOG_DEBUG("timing %s: agent start %.1f ms", req.id().c_str(), ms_since(t0));
    p->with_state([](ProcessState& st) { (void)st.start(); });
    ev::TaskStart ts;
    ts.set_container_id(req.id());
    ts.set_pid(p->pid());
    events_->publish(ts);
  } else {
    v1::ExecProcessRequest er;
    er.set_container_id(req.id());
    er.set_exec_id(req.exec_id());
    er.set_process_json(p->spec().process_json);
    er.set_stdio(p->has_stdio() ? v1::STDIO_STREAM : v1::STDIO_NULL);
    v1::ExecProcessResponse resp;
    if (auto s = call->agent->ExecProcess(agent_ctx(cc).get(), er, &resp); !s.ok()) return reply(s);
    p->set_pid(static_cast<uint32_t>(resp.pid()));
    p->with_state([](ProcessState& st) { (void)st.start(); });
    p->start_io(call->agent);
    ev::TaskExecStarted es;
    es.set_container_id(req.id());
    es.set_exec_id(req.exec_id());
    es.set_pid(p->pid());
    events_->publish(es);
  }
  p->start_waiter(call->agent, exited);
  task::StartResponse resp;
  resp.set_pid(p->pid());
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::state(const std::string& payload, const ttrpc::CallContext&) {
  task::StateRequest req;
  auto call = begin_call(payload, &req);
  if (!call) return reply(call.error());
  const auto& p = *call->proc;
  task::StateResponse resp;
  resp.set_id(p.name());
  resp.set_exec_id(req.exec_id());
  resp.set_bundle(p.spec().bundle);
  resp.set_stdin(p.spec().stdin_path);
  resp.set_stdout(p.spec().stdout_path);
  resp.set_stderr(p.spec().stderr_path);
  resp.set_terminal(p.spec().terminal);
  resp.set_pid(p.pid());
  call->proc->with_state([&](ProcessState& st) {
    switch (st.status()) {
      case ProcessState::Status::kCreated: resp.set_status(types::CREATED); break;
      case ProcessState::Status::kRunning: resp.set_status(types::RUNNING); break;
      case ProcessState::Status::kPaused: resp.set_status(types::PAUSED); break;
      case ProcessState::Status::kStopped:
      case ProcessState::Status::kDeleted:
        resp.set_status(types::STOPPED);
        resp.set_exit_status(st.exit_status());
        set_time(resp.mutable_exited_at(), st.exited_at());
        break;
    }
  });
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::wait(const std::string& payload, const ttrpc::CallContext&) {
  task::WaitRequest req;
  auto call = begin_call(payload, &req);
  if (!call) return reply(call.error());
  auto e = call->proc->wait_exit();
  task::WaitResponse resp;
  resp.set_exit_status(e.status);
  set_time(resp.mutable_exited_at(), e.at);
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::kill(const std::string& payload, const ttrpc::CallContext& cc) {
  task::KillRequest req;
  auto call = begin_call(payload, &req);
  if (!call) return reply(call.error());
  v1::SignalProcessRequest sr;
  sr.set_container_id(req.id());
  sr.set_exec_id(req.exec_id());
  sr.set_signal(static_cast<int32_t>(req.signal()));
  sr.set_all(req.all());
  v1::Empty e;
  if (auto s = call->agent->SignalProcess(agent_ctx(cc).get(), sr, &e); !s.ok()) return reply(s);
  return empty_ok();
}

Reply TaskService::del(const std::string& payload, const ttrpc::CallContext& cc) {
  task::DeleteRequest req;
  auto call = begin_call(payload, &req);
  if (!call) return reply(call.error());
  auto& p = call->proc;
  task::DeleteResponse resp;
  if (auto s = p->with_state([&](ProcessState& st) -> Status {
        HUSK_TRY(st.remove());
        resp.set_exit_status(st.exit_status());
        set_time(resp.mutable_exited_at(), st.exited_at());
        return {};
      });
      !s)
    return reply(s.error());
  resp.set_pid(p->pid());
  p->notify_deleted();  // a Wait on a process deleted before it ever started
  p->cancel_stdin();
  if (!req.exec_id().empty()) {
    std::lock_guard lk(mu_);
    if (auto t = tasks_.find(req.id()); t != tasks_.end()) t->second.procs.erase(req.exec_id());
    return Reply::ok(resp.SerializeAsString());
  }
  auto t0 = std::chrono::steady_clock::now();
  v1::RemoveContainerRequest rr;
  rr.set_container_id(req.id());
  rr.set_force(true);  // a created-but-never-started init is still waiting for START
  v1::Empty e;
  if (auto s = call->agent->RemoveContainer(agent_ctx(cc).get(), rr, &e); !s.ok() && s.error_code() != grpc::StatusCode::NOT_FOUND) {
    // A container whose sandbox died (its VMM killed, say) died with it: nothing to remove.
    std::string dead = call->sandbox ? call->sandbox->failure() : "";
    if (dead.empty()) return reply(s);
    LOG_INFO("delete %s: its sandbox is gone (%s)", req.id().c_str(), dead.c_str());
  }
  forget_task(req.id(), /*detach=*/true);
  LOG_DEBUG("timing %s: delete %.1f ms", req.id().c_str(), ms_since(t0));
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
  std::shared_ptr<Sandbox> sandbox;
  {
    std::lock_guard lk(mu_);
    tasks.swap(tasks_);
    sandbox = sandbox_;
  }
  if (sandbox)
    for (auto& [id, t] : tasks)
      if (t.attached) sandbox->detach_rootfs(id, t.bundle);
  stop_sandbox_if_unused();
  tasks.clear();  // joins the process threads, whose streams ended with the sandbox
}

Reply TaskService::exec(const std::string& payload, const ttrpc::CallContext&) {
  task::ExecProcessRequest req;
  if (!req.ParseFromString(payload)) return reply(make_error(ErrorCode::kInvalidArgument, "request does not parse"));
  if (auto s = check_id("exec id", req.exec_id()); !s) return reply(s.error());
  // The exec does not exist yet: only the task has to.
  auto init = find(req.id(), "");
  if (!init) return reply(init.error());
  if (auto s = init->proc->with_state([](ProcessState& st) { return st.check_exec(); }); !s)
    return reply(s.error());
  auto p = std::make_shared<Process>(Process::Spec{req.id(), req.exec_id(), init->proc->spec().bundle, req.stdin(),
                                                   req.stdout(), req.stderr(), req.terminal(),
                                                   req.spec().value()});  // JSON, .../runtime-spec/1/Process
  {
    std::lock_guard lk(mu_);
    auto t = tasks_.find(req.id());  // deleted since find()?
    if (t == tasks_.end()) return reply(make_error(ErrorCode::kNotFound, "task %s not found", req.id().c_str()));
    auto& procs = t->second.procs;
    if (procs.count(req.exec_id())) return reply(make_error(ErrorCode::kAlreadyExists, "exec %s already exists", req.exec_id().c_str()));
    procs[req.exec_id()] = p;
  }
  ev::TaskExecAdded e;
  e.set_container_id(req.id());
  e.set_exec_id(req.exec_id());
  events_->publish(e);
  return empty_ok();
}

Reply TaskService::pids(const std::string& payload, const ttrpc::CallContext& cc) {
  task::PidsRequest req;
  auto call = begin_call(payload, &req);
  if (!call) return reply(call.error());
  v1::ContainerRequest cr;
  cr.set_container_id(req.id());
  v1::ListProcessesResponse lr;
  if (auto s = call->agent->ListProcesses(agent_ctx(cc).get(), cr, &lr); !s.ok()) return reply(s);
  task::PidsResponse resp;
  for (const auto& pi : lr.processes()) resp.add_processes()->set_pid(static_cast<uint32_t>(pi.pid()));
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::stats(const std::string& payload, const ttrpc::CallContext& cc) {
  task::StatsRequest req;
  auto call = begin_call(payload, &req);
  if (!call) return reply(call.error());
  v1::ContainerRequest cr;
  cr.set_container_id(req.id());
  v1::ContainerStats st;
  if (auto s = call->agent->StatsContainer(agent_ctx(cc).get(), cr, &st); !s.ok()) return reply(s);
  task::StatsResponse resp;
  *resp.mutable_stats() = metrics_from(st);
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::pause(const std::string& payload, const ttrpc::CallContext& cc, bool frozen) {
  task::PauseRequest req;  // PauseRequest and ResumeRequest both carry only the id
  auto call = begin_call(payload, &req);
  if (!call) return reply(call.error());
  auto& p = call->proc;
  if (auto s = p->check([&](ProcessState& st) { return frozen ? st.pause() : st.resume(); }); !s)
    return reply(s.error());
  v1::ContainerRequest cr;
  cr.set_container_id(req.id());
  v1::Empty e;
  auto ctx = agent_ctx(cc);
  auto s = frozen ? call->agent->PauseContainer(ctx.get(), cr, &e) : call->agent->ResumeContainer(ctx.get(), cr, &e);
  if (!s.ok()) return reply(s);
  // It may have exited meanwhile: then it stays stopped.
  p->with_state([&](ProcessState& st) { (void)(frozen ? st.pause() : st.resume()); });
  if (frozen) {
    ev::TaskPaused pe;
    pe.set_container_id(req.id());
    events_->publish(pe);
  } else {
    ev::TaskResumed re;
    re.set_container_id(req.id());
    events_->publish(re);
  }
  return empty_ok();
}

Reply TaskService::resize_pty(const std::string& payload, const ttrpc::CallContext& cc) {
  task::ResizePtyRequest req;
  auto call = begin_call(payload, &req);
  if (!call) return reply(call.error());
  v1::ResizePtyRequest rr;
  rr.set_container_id(req.id());
  rr.set_exec_id(req.exec_id());
  rr.set_rows(req.height());
  rr.set_cols(req.width());
  v1::Empty e;
  if (auto s = call->agent->ResizePty(agent_ctx(cc).get(), rr, &e); !s.ok()) return reply(s);
  return empty_ok();
}

Reply TaskService::close_io(const std::string& payload, const ttrpc::CallContext& cc) {
  task::CloseIORequest req;
  auto call = begin_call(payload, &req);
  if (!call) return reply(call.error());
  // The stdin copier closes the process's stdin when containerd's FIFO reaches EOF; this only
  // has to make sure it happens even if containerd keeps the FIFO open.
  if (req.stdin()) {
    v1::Empty e;
    (void)call->agent->CloseStdin(agent_ctx(cc).get(), call->proc->request(), &e);
  }
  return empty_ok();
}

Reply TaskService::update(const std::string& payload, const ttrpc::CallContext& cc) {
  task::UpdateTaskRequest req;
  auto call = begin_call(payload, &req);
  if (!call) return reply(call.error());
  v1::UpdateContainerRequest ur;
  ur.set_container_id(req.id());
  ur.set_resources_json(req.resources().value());  // JSON LinuxResources
  v1::Empty e;
  if (auto s = call->agent->UpdateContainer(agent_ctx(cc).get(), ur, &e); !s.ok()) return reply(s);
  return empty_ok();
}

Reply TaskService::connect(const std::string& payload, const ttrpc::CallContext&) {
  task::ConnectRequest req;
  if (!req.ParseFromString(payload)) return reply(make_error(ErrorCode::kInvalidArgument, "request does not parse"));
  task::ConnectResponse resp;
  resp.set_shim_pid(static_cast<uint32_t>(getpid()));
  if (auto call = find(req.id(), ""); call) resp.set_task_pid(call->proc->pid());
  resp.set_version("husk 0.1.0");
  return Reply::ok(resp.SerializeAsString());
}

Reply TaskService::shutdown(const std::string& payload, const ttrpc::CallContext&) {
  task::ShutdownRequest req;
  if (!req.ParseFromString(payload)) return reply(make_error(ErrorCode::kInvalidArgument, "request does not parse"));
  {
    std::lock_guard lk(mu_);
    if (!tasks_.empty() && !req.now()) return empty_ok();  // other containers of the pod remain
  }
  shutdown_();
  return empty_ok();
}

}  // namespace husk::shim
