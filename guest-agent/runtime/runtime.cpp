#include "guest-agent/runtime/runtime.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "common/ids.h"
#include "common/log.h"
#include "guest-agent/runtime/child.h"

namespace husk::agent {

namespace {

Error err(ErrorCode code, std::string msg) { return Error{std::move(msg), code}; }

const char* ns_file(int type) {
  switch (type) {
    case CLONE_NEWPID: return "pid";
    case CLONE_NEWNET: return "net";
    case CLONE_NEWNS: return "mnt";
    case CLONE_NEWIPC: return "ipc";
    case CLONE_NEWUTS: return "uts";
    case CLONE_NEWUSER: return "user";
    case CLONE_NEWCGROUP: return "cgroup";
  }
  return "?";
}

std::string id_map(const std::vector<oci::IdMapping>& maps) {
  std::string s;
  for (const auto& m : maps)
    s += std::to_string(m.container_id) + " " + std::to_string(m.host_id) + " " + std::to_string(m.size) + "\n";
  return s;
}

std::string join_options(const std::vector<std::string>& opts) {
  std::string s;
  for (const auto& o : opts) {
    if (!s.empty()) s += ',';
    s += o;
  }
  return s;
}

struct Pty {
  UniqueFd master, slave;
  std::string name;
};

// A terminal from the container's own devpts instance (pts/ptmx under its root), as runc
// allocates one for `exec -t`: the name the process sees (/dev/pts/N) exists in its /dev, so
// ttyname() and `tty` work. The container controls its /dev: only a real ptmx of a devpts
// filesystem is taken (opened non-blocking, so a FIFO planted there cannot hang the agent), and
// the slave comes from the master (TIOCGPTPEER), never from a path. Empty when there is none.
std::optional<Pty> container_pty(int root) {
  UniqueFd m(child::openat2_in_root(root, "/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_NONBLOCK));
  struct statfs fs;
  struct stat st;
  if (!m || fstatfs(m.get(), &fs) != 0 || fs.f_type != DEVPTS_SUPER_MAGIC || fstat(m.get(), &st) != 0 || !S_ISCHR(st.st_mode))
    return std::nullopt;
  int unlock = 0;
  unsigned n = 0;
  if (ioctl(m.get(), TIOCSPTLCK, &unlock) != 0 || ioctl(m.get(), TIOCGPTN, &n) != 0) return std::nullopt;
  UniqueFd slave(ioctl(m.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave || fcntl(m.get(), F_SETFL, fcntl(m.get(), F_GETFL) & ~O_NONBLOCK) != 0) return std::nullopt;
  char name[32];
  std::snprintf(name, sizeof name, "/dev/pts/%u", n);
  return Pty{std::move(m), std::move(slave), name};
}

// A terminal from the agent's own devpts: a new container's (its root does not exist yet), bound
// on its /dev/console as runc does; or an exec's in a root without a devpts of its own.
Result<Pty> agent_pty() {
  UniqueFd m(posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!m || grantpt(m.get()) != 0 || unlockpt(m.get()) != 0)
    return err(ErrorCode::kInternal, std::string("allocating a terminal: ") + strerror(errno));
  char name[128];
  if (ptsname_r(m.get(), name, sizeof name) != 0) return err(ErrorCode::kInternal, std::string("ptsname: ") + strerror(errno));
  UniqueFd slave(open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave) return err(ErrorCode::kInternal, std::string("open ") + name + ": " + strerror(errno));
  return Pty{std::move(m), std::move(slave), name};
}

}  // namespace

struct Runtime::Container {
  std::string id;
  oci::Spec spec;
  std::string rootfs;
  std::optional<Cgroup> cgroup;
  std::optional<oci::SeccompProgram> seccomp;
  std::shared_ptr<Process> init;
  std::map<std::string, std::shared_ptr<Process>> execs;
  Launched launched;
  bool started = false;
  std::vector<std::string> mounts;  // made by the agent for this container, unmounted on remove
  uint64_t oom_kills = 0;
  int oom_wd = -1;
  std::mutex op_mu;  // one lifecycle operation at a time
};

Runtime::Runtime(RuntimeOptions opts) : opts_(std::move(opts)) {
  inotify_.reset(inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  oom_wake_.reset(eventfd(0, EFD_CLOEXEC));
  oom_thread_ = std::thread([this] { oom_loop(); });
}

Runtime::~Runtime() {
  destroy_all();
  uint64_t one = 1;
  (void)!::write(oom_wake_.get(), &one, sizeof one);
  oom_thread_.join();
}

std::shared_ptr<Runtime::Container> Runtime::find(const std::string& id) {
  std::lock_guard lk(mu_);
  auto it = containers_.find(id);
  return it == containers_.end() ? nullptr : it->second;
}

void Runtime::track(const std::shared_ptr<Process>& p) {
  std::unique_lock lk(mu_);
  if (auto it = unclaimed_.find(p->pid()); it != unclaimed_.end()) {
    int status = it->second;
    unclaimed_.erase(it);
    lk.unlock();
    p->set_exited(status);
    return;
  }
  by_pid_[p->pid()] = p;
}

void Runtime::on_exit(pid_t pid, int status) {
  std::shared_ptr<Process> p;
  {
    std::lock_guard lk(mu_);
    auto it = by_pid_.find(pid);
    if (it == by_pid_.end()) {
      // An intermediate child, an orphan, or a process whose launch has not returned yet.
      unclaimed_[pid] = status;
      unclaimed_order_.push_back(pid);
      while (unclaimed_order_.size() > 4096) {
        unclaimed_.erase(unclaimed_order_.front());
        unclaimed_order_.pop_front();
      }
      return;
    }
    p = it->second;
    by_pid_.erase(it);
  }
  p->set_exited(status);
}

Status Runtime::setup_stdio(Stdio mode, bool terminal, const oci::Process& p, int container_root, LaunchPlan* plan,
                            std::vector<UniqueFd>* child_ends, std::function<void(Process&)>* attach) {
  if (mode == Stdio::kNull) {
    UniqueFd null(open("/dev/null", O_RDWR | O_CLOEXEC));
    if (!null) return err(ErrorCode::kInternal, std::string("open /dev/null: ") + strerror(errno));
    plan->stdin_fd = plan->stdout_fd = plan->stderr_fd = null.get();
    child_ends->push_back(std::move(null));
    *attach = [](Process&) {};
    return {};
  }
  if (terminal) {
    std::optional<Pty> in_container = container_root >= 0 ? container_pty(container_root) : std::nullopt;
    auto pty = in_container ? Result<Pty>(std::move(*in_container)) : agent_pty();
    if (!pty) return pty.error();
    auto& [master, slave, name] = *pty;
    if (p.console_rows && p.console_cols) {
      winsize ws{p.console_rows, p.console_cols, 0, 0};
      ioctl(master.get(), TIOCSWINSZ, &ws);
    }
    plan->pty_slave = slave.get();
    plan->pty_path = name;
    child_ends->push_back(std::move(slave));
    auto m = std::make_shared<UniqueFd>(std::move(master));
    *attach = [m](Process& proc) { proc.attach_pty(std::move(*m)); };
    return {};
  }
  int in[2], out[2], er[2];
  if (pipe2(in, O_CLOEXEC) != 0) return err(ErrorCode::kInternal, std::string("pipe: ") + strerror(errno));
  UniqueFd in_r(in[0]), in_w(in[1]);
  if (pipe2(out, O_CLOEXEC) != 0) return err(ErrorCode::kInternal, std::string("pipe: ") + strerror(errno));
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (pipe2(er, O_CLOEXEC) != 0) return err(ErrorCode::kInternal, std::string("pipe: ") + strerror(errno));
  UniqueFd err_r(er[0]), err_w(er[1]);
  plan->stdin_fd = in_r.get();
  plan->stdout_fd = out_w.get();
  plan->stderr_fd = err_w.get();
  child_ends->push_back(std::move(in_r));
  child_ends->push_back(std::move(out_w));
  child_ends->push_back(std::move(err_w));
  auto fds = std::make_shared<std::array<UniqueFd, 3>>();
  (*fds)[0] = std::move(in_w);
  (*fds)[1] = std::move(out_r);
  (*fds)[2] = std::move(err_r);
  *attach = [fds](Process& proc) { proc.attach_stdio(std::move((*fds)[0]), std::move((*fds)[1]), std::move((*fds)[2])); };
  return {};
}

// What resolve_rootfs needs checked before it mounts anything: the subpath, made absolute.
Result<std::string> Runtime::check_rootfs(const RootfsSource& r, const oci::Spec& spec) {
  std::string subpath = r.subpath;
  if (!subpath.empty()) {
    if (subpath[0] != '/') subpath.insert(subpath.begin(), '/');
    if (auto s = oci::check_container_path("rootfs.subpath", subpath); !s)
      return err(ErrorCode::kInvalidArgument, s.error().message);
  }
  if (!r.path.empty()) {
    if (r.path[0] != '/') return err(ErrorCode::kInvalidArgument, "rootfs.path must be absolute");
  } else if (r.virtiofs_tag.empty() && !r.block_device.empty()) {
    if (r.fstype.empty()) return err(ErrorCode::kInvalidArgument, "rootfs.fstype is needed with a block device");
  } else if (r.virtiofs_tag.empty() && (spec.root_path.empty() || spec.root_path[0] != '/')) {
    return err(ErrorCode::kInvalidArgument, "root.path \"" + spec.root_path +
                                                "\" is relative and no rootfs was given: send an absolute path");
  }
  return subpath;
}

Status Runtime::resolve_rootfs(const RootfsSource& r, const oci::Spec& spec, Container& c) {
  std::string dir = opts_.state_dir + "/" + c.id;
  auto mount_at = [&](const std::string& source, const std::string& fstype, const std::string& target,
                      const std::string& options) -> Status {
    std::error_code ec;
    std::filesystem::create_directories(target, ec);
    if (ec) return err(ErrorCode::kInternal, "mkdir " + target + ": " + ec.message());
    if (mount(source.c_str(), target.c_str(), fstype.c_str(), 0, options.empty() ? nullptr : options.c_str()) != 0)
      return err(ErrorCode::kFailedPrecondition,
                 "mounting the rootfs " + source + " (" + fstype + ") on " + target + ": " + strerror(errno));
    c.mounts.push_back(target);
    return {};
  };
  auto checked = check_rootfs(r, spec);
  if (!checked) return checked.error();
  const std::string& subpath = *checked;
  if (!r.path.empty()) {
    c.rootfs = r.path + subpath;
  } else if (!r.virtiofs_tag.empty()) {
    std::string target = dir + "/share";
    if (auto s = mount_at(r.virtiofs_tag, "virtiofs", target, join_options(r.options)); !s) return s;
    c.rootfs = target + subpath;
  } else if (!r.block_device.empty()) {
    std::string target = dir + "/disk";
    if (auto s = mount_at(r.block_device, r.fstype, target, join_options(r.options)); !s) return s;
    c.rootfs = target + subpath;
  } else {
    c.rootfs = spec.root_path;
  }
  struct stat st;
  if (stat(c.rootfs.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return err(ErrorCode::kFailedPrecondition, "the container root " + c.rootfs + " is not a directory");
  return {};
}

Result<int> Runtime::create(const CreateRequest& req) {
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  HUSK_TRY(check_id("container id", req.id));
  auto parsed = oci::parse_spec(req.config_json);
  if (!parsed) return err(ErrorCode::kInvalidArgument, parsed.error().message);
  auto c = std::make_shared<Container>();
  c->id = req.id;
  c->spec = std::move(parsed.value());
  if (opts_.isolate_from_agent) {
    for (int type : {CLONE_NEWNS, CLONE_NEWPID})
      if (!c->spec.has_namespace(type)) c->spec.namespaces.push_back(oci::Namespace{type, ""});
  }
  const oci::Spec& spec = c->spec;
  if ((!spec.hostname.empty() || !spec.domainname.empty()) && !spec.has_namespace(CLONE_NEWUTS))
    return err(ErrorCode::kInvalidArgument, "hostname needs a uts namespace in linux.namespaces");
  if (!spec.sysctl.empty() && !spec.has_namespace(CLONE_NEWNS))
    return err(ErrorCode::kInvalidArgument, "linux.sysctl needs a mount namespace");
  HUSK_TRY(check_rootfs(req.rootfs, spec));
  if (spec.seccomp) {
    auto prog = oci::compile_seccomp(*spec.seccomp);
    if (!prog) return err(ErrorCode::kInvalidArgument, prog.error().message);
    c->seccomp = std::move(prog.value());
  }
  if (opts_.dry_run) return err(ErrorCode::kFailedPrecondition, "dry run: container " + c->id + " is valid, not created");
  {
    std::lock_guard lk(mu_);
    if (containers_.count(c->id)) return err(ErrorCode::kAlreadyExists, "container " + c->id + " already exists");
    containers_[c->id] = c;  // reserve the id while we build it
  }
  std::lock_guard op(c->op_mu);
  auto fail = [&](Error e) {
    for (auto it = c->mounts.rbegin(); it != c->mounts.rend(); ++it) umount2(it->c_str(), MNT_DETACH);
    if (c->cgroup) (void)c->cgroup->destroy(1000);
    std::lock_guard lk(mu_);
    containers_.erase(c->id);
    return e;
  };
  auto t1 = Clock::now();
  if (auto s = resolve_rootfs(req.rootfs, spec, *c); !s) return fail(s.error());
  auto t2 = Clock::now();
  auto cg = Cgroup::create(spec.cgroups_path.empty() ? opts_.cgroup_parent + "/" + c->id : spec.cgroups_path,
                           opts_.missing_controllers_ok);
  if (!cg) return fail(err(ErrorCode::kFailedPrecondition, cg.error().message));
  c->cgroup = std::move(cg.value());
  if (!c->cgroup->processes().empty())
    return fail(err(ErrorCode::kFailedPrecondition, "cgroup " + c->cgroup->path() + " already has processes"));
  if (auto s = c->cgroup->apply(spec.resources); !s) return fail(err(ErrorCode::kFailedPrecondition, s.error().message));

  auto t3 = Clock::now();
  LaunchPlan plan;
  plan.spec = &spec;
  plan.process = &spec.process;
  plan.rootfs = c->rootfs;
  plan.setup_rootfs = true;
  plan.wait_for_start = true;
  for (const auto& ns : spec.namespaces) {
    if (ns.path.empty()) plan.new_namespaces |= ns.type;
    else plan.join.emplace_back(ns.type, ns.path);
  }
  plan.uid_map = id_map(spec.uid_mappings);
  plan.gid_map = id_map(spec.gid_mappings);
  plan.seccomp = c->seccomp ? &*c->seccomp : nullptr;
  plan.cgroup = &*c->cgroup;
  plan.cgroup_path = c->cgroup->path();
  std::vector<UniqueFd> child_ends;
  std::function<void(Process&)> attach;
  if (auto s = setup_stdio(req.stdio, spec.process.terminal, spec.process, -1, &plan, &child_ends, &attach); !s)
    return fail(s.error());
  auto t4 = Clock::now();
  auto launched = launch(plan);
  auto t5 = Clock::now();
  child_ends.clear();
  if (!launched) return fail(err(ErrorCode::kFailedPrecondition, "creating container " + c->id + ": " + launched.error().message));
  c->launched = std::move(launched.value());
  c->init = std::make_shared<Process>("", c->launched.pid);
  attach(*c->init);
  track(c->init);
  c->oom_kills = c->cgroup->oom_kills();
  watch_oom(*c);
  auto ms = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  LOG_INFO("created container %s (pid %d) in %.1f ms: spec %.1f, rootfs %.1f, cgroup %.1f, stdio %.1f, launch %.1f, watch %.1f",
           c->id.c_str(), c->launched.pid, ms(t0, Clock::now()), ms(t0, t1), ms(t1, t2), ms(t2, t3), ms(t3, t4), ms(t4, t5),
           ms(t5, Clock::now()));
  return c->launched.pid;
}

Status Runtime::start(const std::string& id) {
  auto c = find(id);
  if (!c) return err(ErrorCode::kNotFound, "container " + id + " does not exist");
  std::lock_guard op(c->op_mu);
  if (c->started) return err(ErrorCode::kFailedPrecondition, "container " + id + " was already started");
  if (!c->init || c->init->exited()) return err(ErrorCode::kFailedPrecondition, "container " + id + " has exited");
  c->started = true;
  if (auto s = agent::start(c->launched); !s) return err(ErrorCode::kFailedPrecondition, "starting " + id + ": " + s.error().message);
  return {};
}

Result<int> Runtime::exec(const ExecRequest& req) {
  HUSK_TRY(check_id("exec id", req.exec_id));
  auto proc = oci::parse_process(req.process_json);
  if (!proc) return err(ErrorCode::kInvalidArgument, proc.error().message);
  if (opts_.dry_run) return err(ErrorCode::kFailedPrecondition, "dry run: exec " + req.exec_id + " is valid, not started");
  auto c = find(req.container_id);
  if (!c) return err(ErrorCode::kNotFound, "container " + req.container_id + " does not exist");
  std::lock_guard op(c->op_mu);
  if (!c->started || !c->init || c->init->exited())
    return err(ErrorCode::kFailedPrecondition, "container " + c->id + " is not running");
  if (c->cgroup->frozen()) return err(ErrorCode::kFailedPrecondition, "container " + c->id + " is paused");
  if (c->execs.count(req.exec_id)) return err(ErrorCode::kAlreadyExists, "exec " + req.exec_id + " already exists");
  auto process = std::make_shared<oci::Process>(std::move(proc.value()));

  LaunchPlan plan;
  plan.spec = &c->spec;
  plan.process = process.get();
  std::string base = "/proc/" + std::to_string(c->init->pid()) + "/";
  for (const auto& ns : c->spec.namespaces) plan.join.emplace_back(ns.type, base + "ns/" + ns_file(ns.type));
  plan.enter_root = base + "root";
  plan.seccomp = c->seccomp ? &*c->seccomp : nullptr;
  plan.cgroup = &*c->cgroup;
  std::vector<UniqueFd> child_ends;
  std::function<void(Process&)> attach;
  UniqueFd root(process->terminal ? open(plan.enter_root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC) : -1);
  if (auto s = setup_stdio(req.stdio, process->terminal, *process, root.get(), &plan, &child_ends, &attach); !s) return s.error();
  auto launched = launch(plan);
  child_ends.clear();
  if (!launched) return err(ErrorCode::kFailedPrecondition, "exec in " + c->id + ": " + launched.error().message);
  auto p = std::make_shared<Process>(req.exec_id, launched->pid);
  attach(*p);
  track(p);
  c->execs[req.exec_id] = p;
  return p->pid();
}

Result<std::shared_ptr<Process>> Runtime::find_process(const std::string& cid, const std::string& eid) {
  auto c = find(cid);
  if (!c) return err(ErrorCode::kNotFound, "container " + cid + " does not exist");
  std::lock_guard op(c->op_mu);
  std::shared_ptr<Process> out;
  if (eid.empty()) {
    out = c->init;
  } else {
    auto it = c->execs.find(eid);
    if (it == c->execs.end()) return err(ErrorCode::kNotFound, "exec " + eid + " does not exist in container " + cid);
    out = it->second;
  }
  if (!out) return err(ErrorCode::kNotFound, "container " + cid + " has no process");
  return out;
}

Status Runtime::signal(const std::string& cid, const std::string& eid, int sig, bool all) {
  if (sig < 0 || sig >= NSIG) return err(ErrorCode::kInvalidArgument, "signal " + std::to_string(sig) + " is not a signal");
  if (all) {
    auto c = find(cid);
    if (!c) return err(ErrorCode::kNotFound, "container " + cid + " does not exist");
    int n = c->cgroup->signal_all(sig);
    // A frozen task only acts on SIGKILL once thawed; runc thaws for that too.
    if (sig == SIGKILL && c->cgroup->frozen()) (void)c->cgroup->freeze(false);
    if (n == 0 && c->init && c->init->exited())
      return err(ErrorCode::kNotFound, "container " + c->id + " has no running processes");
    return {};
  }
  auto found = find_process(cid, eid);
  if (!found) return found.error();
  const auto& p = *found;
  if (p->exited()) return err(ErrorCode::kNotFound, "process " + std::to_string(p->pid()) + " has already exited");
  if (kill(p->pid(), sig) != 0) {
    if (errno == ESRCH) return err(ErrorCode::kNotFound, "process " + std::to_string(p->pid()) + " has already exited");
    return err(ErrorCode::kInternal, std::string("kill: ") + strerror(errno));
  }
  return {};
}

Result<Exit> Runtime::wait(const std::string& cid, const std::string& eid, const std::function<bool()>& cancelled) {
  auto p = find_process(cid, eid);
  if (!p) return p.error();
  Exit e;
  if (!(*p)->wait(cancelled, &e.status, &e.at)) return err(ErrorCode::kCancelled, "wait cancelled by the client");
  return e;
}

Status Runtime::remove(const std::string& id, bool force) {
  auto c = find(id);
  if (!c) return err(ErrorCode::kNotFound, "container " + id + " does not exist");
  {
    std::lock_guard op(c->op_mu);
    bool running = c->init && !c->init->exited();
    if (running && c->started && !force)
      return err(ErrorCode::kFailedPrecondition, "container " + c->id + " is running: kill it first or remove with force");
    if (running && !c->started) kill(c->init->pid(), SIGKILL);  // still waiting for START
    if (force || !c->started) (void)c->cgroup->kill_all(5000);
    c->launched.sync.reset();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    auto past = [&] { return std::chrono::steady_clock::now() > deadline; };
    if (c->init && !c->init->wait_exit(past)) LOG_WARN("container %s: init did not exit", c->id.c_str());
    for (auto& [eid, p] : c->execs) {
      if (!p->exited()) kill(p->pid(), SIGKILL);
      p->wait_exit(past);
    }
    if (c->oom_wd >= 0) {
      std::lock_guard lk(oom_mu_);
      inotify_rm_watch(inotify_.get(), c->oom_wd);
      oom_watches_.erase(c->oom_wd);
    }
    if (auto s = c->cgroup->destroy(2000); !s) LOG_WARN("%s", s.error().message.c_str());
    for (auto it = c->mounts.rbegin(); it != c->mounts.rend(); ++it)
      if (umount2(it->c_str(), MNT_DETACH) != 0) LOG_WARN("unmounting %s: %s", it->c_str(), strerror(errno));
    std::error_code ec;
    std::filesystem::remove_all(opts_.state_dir + "/" + c->id, ec);
  }
  std::lock_guard lk(mu_);
  containers_.erase(c->id);
  LOG_INFO("removed container %s", c->id.c_str());
  return {};
}

Status Runtime::pause(const std::string& id, bool frozen) {
  auto c = find(id);
  if (!c) return err(ErrorCode::kNotFound, "container " + id + " does not exist");
  std::lock_guard op(c->op_mu);
  if (!c->started || c->init->exited()) return err(ErrorCode::kFailedPrecondition, "container " + id + " is not running");
  if (auto s = c->cgroup->freeze(frozen); !s) return err(ErrorCode::kInternal, s.error().message);
  return {};
}

Status Runtime::update(const std::string& id, const std::string& resources_json) {
  auto r = oci::parse_resources(resources_json);
  if (!r) return err(ErrorCode::kInvalidArgument, r.error().message);
  auto c = find(id);
  if (!c) return err(ErrorCode::kNotFound, "container " + id + " does not exist");
  std::lock_guard op(c->op_mu);
  if (auto s = c->cgroup->apply(*r); !s) return err(ErrorCode::kFailedPrecondition, s.error().message);
  return {};
}

Result<v1::ContainerStats> Runtime::stats(const std::string& id) {
  auto c = find(id);
  if (!c) return err(ErrorCode::kNotFound, "container " + id + " does not exist");
  v1::ContainerStats out;
  c->cgroup->fill_stats(&out);
  return out;
}

Result<std::vector<ProcessInfo>> Runtime::list_processes(const std::string& id) {
  auto c = find(id);
  if (!c) return err(ErrorCode::kNotFound, "container " + id + " does not exist");
  std::lock_guard op(c->op_mu);
  std::vector<ProcessInfo> out;
  for (pid_t pid : c->cgroup->processes()) {
    ProcessInfo pi{pid, ""};
    for (const auto& [eid, p] : c->execs)
      if (p->pid() == pid) pi.exec_id = eid;
    out.push_back(pi);
  }
  return out;
}

Result<ContainerStatus> Runtime::state(const std::string& id) {
  auto c = find(id);
  if (!c) return err(ErrorCode::kNotFound, "container " + id + " does not exist");
  std::lock_guard op(c->op_mu);
  if (!c->init) return err(ErrorCode::kUnavailable, "container " + id + " is being created");
  ContainerStatus out;
  out.pid = c->init->pid();
  if (c->init->exited()) {
    out.state = ContainerStatus::kStopped;
    out.exit.status = c->init->exit_status();
    out.exit.at = c->init->exited_at();
  } else if (!c->started) {
    out.state = ContainerStatus::kCreated;
  } else if (c->cgroup->frozen()) {
    out.state = ContainerStatus::kPaused;
  } else {
    out.state = ContainerStatus::kRunning;
  }
  return out;
}

void Runtime::destroy_all() {
  std::vector<std::string> ids;
  {
    std::lock_guard lk(mu_);
    for (const auto& [id, c] : containers_) ids.push_back(id);
  }
  for (const auto& id : ids) (void)remove(id, /*force=*/true);
}

void Runtime::watch_oom(Container& c) {
  std::lock_guard lk(oom_mu_);
  int wd = inotify_add_watch(inotify_.get(), c.cgroup->memory_events_path().c_str(), IN_MODIFY);
  if (wd < 0) {
    LOG_DEBUG("no OOM events for %s: %s", c.id.c_str(), strerror(errno));
    return;
  }
  c.oom_wd = wd;
  oom_watches_[wd] = c.id;
}

std::shared_ptr<Runtime::OomQueue> Runtime::subscribe_oom() {
  auto q = std::make_shared<OomQueue>();
  std::lock_guard lk(oom_mu_);
  oom_subscribers_.push_back(q);
  return q;
}

void Runtime::unsubscribe_oom(const std::shared_ptr<OomQueue>& q) {
  std::lock_guard lk(oom_mu_);
  std::erase(oom_subscribers_, q);
}

void Runtime::close_oom_subscribers() {
  std::lock_guard lk(oom_mu_);
  for (auto& q : oom_subscribers_) {
    std::lock_guard qlk(q->mu);
    q->closed = true;
    q->cv.notify_all();
  }
}

void Runtime::oom_loop() {
  alignas(inotify_event) char buf[4096];
  for (;;) {
    pollfd fds[2] = {{inotify_.get(), POLLIN, 0}, {oom_wake_.get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents) return;
    ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
    if (n <= 0) continue;
    std::vector<std::string> touched;
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<inotify_event*>(p);
      std::lock_guard lk(oom_mu_);
      if (auto it = oom_watches_.find(ev->wd); it != oom_watches_.end()) touched.push_back(it->second);
      p += sizeof(inotify_event) + ev->len;
    }
    for (const auto& id : touched) {
      auto c = find(id);
      if (!c || !c->cgroup) continue;
      uint64_t kills = c->cgroup->oom_kills();
      if (kills <= c->oom_kills) continue;
      c->oom_kills = kills;
      v1::OomEvent ev;
      ev.set_container_id(id);
      timespec now;
      clock_gettime(CLOCK_REALTIME, &now);
      ev.mutable_at()->set_seconds(now.tv_sec);
      ev.mutable_at()->set_nanos(static_cast<int32_t>(now.tv_nsec));
      LOG_INFO("container %s: OOM kill", id.c_str());
      std::lock_guard lk(oom_mu_);
      for (auto& q : oom_subscribers_) {
        std::lock_guard qlk(q->mu);
        if (q->events.size() < 1024) q->events.push_back(ev);
        q->cv.notify_all();
      }
    }
  }
}

}  // namespace husk::agent
