#include "guest-agent/service/agent_service.h"

#include <fcntl.h>
#include <linux/random.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/log.h"
#include "common/unique_fd.h"
#include "guest-agent/service/status.h"

namespace husk::agent {

using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;

namespace {

Stdio stdio_of(v1::StdioMode m) { return m == v1::STDIO_STREAM ? Stdio::kStream : Stdio::kNull; }

void set_timestamp(const timespec& ts, google::protobuf::Timestamp* out) {
  out->set_seconds(ts.tv_sec);
  out->set_nanos(static_cast<int32_t>(ts.tv_nsec));
}

uint64_t own_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
  return 0;
}

}  // namespace

Status AgentService::Health(ServerContext*, const v1::HealthRequest*, v1::HealthResponse* out) {
  out->set_status(v1::HealthResponse::SERVING);
  return Status::OK;
}

Status AgentService::Version(ServerContext*, const v1::VersionRequest*, v1::VersionResponse* out) {
  out->set_agent_version(kAgentVersion);
  out->set_api_version(kApiVersion);
  return Status::OK;
}

Status AgentService::CreateSandbox(ServerContext*, const v1::CreateSandboxRequest* req, v1::Empty*) {
  if (!opts_.guest) {
    // On a host the agent does not own the machine's hostname, resolv.conf or mounts.
    if (!req->hostname().empty() || req->storages_size() > 0 || req->dns_servers_size() > 0)
      return Status(StatusCode::FAILED_PRECONDITION, "CreateSandbox settings apply only to an agent running as a guest's init");
    return Status::OK;
  }
  if (!req->hostname().empty() && sethostname(req->hostname().data(), req->hostname().size()) != 0)
    return Status(StatusCode::INVALID_ARGUMENT, std::string("sethostname: ") + strerror(errno));
  if (req->dns_servers_size() > 0 || req->dns_searches_size() > 0) {
    std::ofstream f("/etc/resolv.conf");
    for (const auto& s : req->dns_servers()) f << "nameserver " << s << "\n";
    if (req->dns_searches_size() > 0) {
      f << "search";
      for (const auto& s : req->dns_searches()) f << " " << s;
      f << "\n";
    }
    if (!f) return Status(StatusCode::INTERNAL, "writing /etc/resolv.conf failed");
  }
  for (const auto& st : req->storages()) {
    if (auto s = oci::check_container_path("storage.target", st.target()); !s)
      return Status(StatusCode::INVALID_ARGUMENT, s.error().message);
    std::error_code ec;
    std::filesystem::create_directories(st.target(), ec);
    std::string opts;
    for (const auto& o : st.options()) opts += (opts.empty() ? "" : ",") + o;
    if (mount(st.source().c_str(), st.target().c_str(), st.fstype().c_str(), 0, opts.empty() ? nullptr : opts.c_str()) != 0)
      return Status(StatusCode::FAILED_PRECONDITION,
                    "mounting " + st.source() + " (" + st.fstype() + ") on " + st.target() + ": " + strerror(errno));
  }
  return Status::OK;
}

Status AgentService::DestroySandbox(ServerContext*, const v1::DestroySandboxRequest*, v1::Empty*) {
  rt_.destroy_all();
  if (!destroyed_.exchange(true) && opts_.on_destroy) {
    // Answer first; the guest powers off (or the host agent exits) right after.
    std::thread([f = opts_.on_destroy] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      f();
    }).detach();
  }
  return Status::OK;
}

Status AgentService::GetGuestDetails(ServerContext*, const v1::GuestDetailsRequest*, v1::GuestDetails* out) {
  utsname u;
  if (uname(&u) == 0) out->set_kernel_release(u.release);
  struct sysinfo si;
  if (sysinfo(&si) == 0) out->set_memory_total_bytes(uint64_t(si.totalram) * si.mem_unit);
  out->set_cpus(static_cast<uint32_t>(sysconf(_SC_NPROCESSORS_ONLN)));
  out->set_agent_rss_bytes(own_rss_bytes());
  out->set_agent_version(kAgentVersion);
  std::ifstream boot_id("/proc/sys/kernel/random/boot_id");
  std::string id;
  if (std::getline(boot_id, id)) out->set_boot_id(id);
  return Status::OK;
}

Status AgentService::Restored(ServerContext*, const v1::RestoredRequest* req, v1::Empty*) {
  const std::string& e = req->entropy();
  if (e.size() < 32 || e.size() > 512)
    return Status(grpc::StatusCode::INVALID_ARGUMENT, "entropy must be 32 to 512 bytes");
  const auto& wc = req->wall_clock();
  if (!req->has_wall_clock() || wc.seconds() <= 0 || wc.nanos() < 0 || wc.nanos() >= 1000000000)
    return Status(grpc::StatusCode::INVALID_ARGUMENT, "wall_clock must be a valid time after 1970");
  // On a host this would reseed the host's CRNG and set the host's clock.
  if (!opts_.guest) return Status(grpc::StatusCode::FAILED_PRECONDITION, "Restored is for agents in a restored microVM");
  UniqueFd rnd(::open("/dev/urandom", O_WRONLY | O_CLOEXEC));
  if (!rnd) return Status(grpc::StatusCode::INTERNAL, std::string("/dev/urandom: ") + std::strerror(errno));
  // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }: credited, so the
  // reseed below takes it.
  std::vector<int> info(2 + (e.size() + sizeof(int) - 1) / sizeof(int));
  info[0] = static_cast<int>(e.size() * 8);
  info[1] = static_cast<int>(e.size());
  std::memcpy(info.data() + 2, e.data(), e.size());
  if (::ioctl(rnd.get(), RNDADDENTROPY, info.data()) != 0 || ::ioctl(rnd.get(), RNDRESEEDCRNG) != 0)
    return Status(grpc::StatusCode::INTERNAL, std::string("reseeding the CRNG: ") + std::strerror(errno));
  timespec ts{static_cast<time_t>(wc.seconds()), wc.nanos()};
  if (::clock_settime(CLOCK_REALTIME, &ts) != 0)
    return Status(grpc::StatusCode::INTERNAL, std::string("setting the clock: ") + std::strerror(errno));
  return Status::OK;
}

Status AgentService::CreateContainer(ServerContext*, const v1::CreateContainerRequest* req, v1::CreateContainerResponse* out) {
  CreateRequest r;
  r.id = req->id();
  r.config_json = req->config_json();
  const auto& root = req->rootfs();
  r.rootfs.path = root.path();
  r.rootfs.virtiofs_tag = root.virtiofs_tag();
  r.rootfs.block_device = root.block_device();
  r.rootfs.fstype = root.fstype();
  r.rootfs.subpath = root.subpath();
  r.rootfs.options.assign(root.options().begin(), root.options().end());
  r.stdio = stdio_of(req->stdio());
  auto pid = rt_.create(r);
  if (!pid) return to_grpc(pid.error());
  out->set_pid(*pid);
  return Status::OK;
}

Status AgentService::StartContainer(ServerContext*, const v1::ContainerRequest* req, v1::Empty*) {
  return to_grpc(rt_.start(req->container_id()));
}

Status AgentService::ExecProcess(ServerContext*, const v1::ExecProcessRequest* req, v1::ExecProcessResponse* out) {
  auto pid = rt_.exec(ExecRequest{req->container_id(), req->exec_id(), req->process_json(), stdio_of(req->stdio())});
  if (!pid) return to_grpc(pid.error());
  out->set_pid(*pid);
  return Status::OK;
}

Status AgentService::SignalProcess(ServerContext*, const v1::SignalProcessRequest* req, v1::Empty*) {
  return to_grpc(rt_.signal(req->container_id(), req->exec_id(), req->signal(), req->all()));
}

Status AgentService::WaitProcess(ServerContext* ctx, const v1::ProcessRequest* req, v1::WaitProcessResponse* out) {
  auto e = rt_.wait(req->container_id(), req->exec_id(), [ctx] { return ctx->IsCancelled(); });
  if (!e) return to_grpc(e.error());
  out->set_exit_status(e->status);
  set_timestamp(e->at, out->mutable_exited_at());
  return Status::OK;
}

Status AgentService::RemoveContainer(ServerContext*, const v1::RemoveContainerRequest* req, v1::Empty*) {
  return to_grpc(rt_.remove(req->container_id(), req->force()));
}

Status AgentService::PauseContainer(ServerContext*, const v1::ContainerRequest* req, v1::Empty*) {
  return to_grpc(rt_.pause(req->container_id(), true));
}

Status AgentService::ResumeContainer(ServerContext*, const v1::ContainerRequest* req, v1::Empty*) {
  return to_grpc(rt_.pause(req->container_id(), false));
}

Status AgentService::UpdateContainer(ServerContext*, const v1::UpdateContainerRequest* req, v1::Empty*) {
  return to_grpc(rt_.update(req->container_id(), req->resources_json()));
}

Status AgentService::StatsContainer(ServerContext*, const v1::ContainerRequest* req, v1::ContainerStats* out) {
  auto st = rt_.stats(req->container_id());
  if (!st) return to_grpc(st.error());
  *out = std::move(st.value());
  return Status::OK;
}

Status AgentService::ListProcesses(ServerContext*, const v1::ContainerRequest* req, v1::ListProcessesResponse* out) {
  auto ps = rt_.list_processes(req->container_id());
  if (!ps) return to_grpc(ps.error());
  for (const auto& p : *ps) {
    auto* pi = out->add_processes();
    pi->set_pid(p.pid);
    pi->set_exec_id(p.exec_id);
  }
  return Status::OK;
}

Status AgentService::StateContainer(ServerContext*, const v1::ContainerRequest* req, v1::ContainerState* out) {
  auto st = rt_.state(req->container_id());
  if (!st) return to_grpc(st.error());
  out->set_pid(st->pid);
  switch (st->state) {
    case ContainerStatus::kCreated: out->set_status(v1::ContainerState::CREATED); break;
    case ContainerStatus::kRunning: out->set_status(v1::ContainerState::RUNNING); break;
    case ContainerStatus::kPaused: out->set_status(v1::ContainerState::PAUSED); break;
    case ContainerStatus::kStopped:
      out->set_status(v1::ContainerState::STOPPED);
      out->set_exit_status(st->exit.status);
      set_timestamp(st->exit.at, out->mutable_exited_at());
      break;
  }
  return Status::OK;
}

Status AgentService::GetOomEvents(ServerContext* ctx, const v1::OomEventsRequest*, grpc::ServerWriter<v1::OomEvent>* w) {
  auto q = rt_.subscribe_oom();
  for (;;) {
    std::unique_lock lk(q->mu);
    q->cv.wait_for(lk, std::chrono::milliseconds(200), [&] { return !q->events.empty() || q->closed; });
    if (ctx->IsCancelled() || q->closed) break;
    while (!q->events.empty()) {
      v1::OomEvent ev = q->events.front();
      q->events.pop_front();
      lk.unlock();
      bool ok = w->Write(ev);
      lk.lock();
      if (!ok) {
        lk.unlock();
        rt_.unsubscribe_oom(q);
        return Status::OK;  // the client went away
      }
    }
  }
  rt_.unsubscribe_oom(q);
  return Status::OK;
}

Status AgentService::read_output(ServerContext* ctx, const v1::ProcessRequest* req, bool stderr_stream,
                                 grpc::ServerWriter<v1::IoChunk>* w) {
  auto found = rt_.find_process(req->container_id(), req->exec_id());
  if (!found) return to_grpc(found.error());
  const auto& p = *found;
  OutputPipe* pipe = stderr_stream ? p->stderr_pipe() : p->stdout_pipe();
  if (!pipe) return Status::OK;  // null stdio, or stderr of a terminal: an empty stream
  std::string chunk;
  v1::IoChunk msg;
  while (pipe->read(&chunk, [ctx] { return ctx->IsCancelled(); })) {
    msg.set_data(std::move(chunk));
    chunk.clear();
    if (!w->Write(msg)) return Status(StatusCode::CANCELLED, "the reader went away");
  }
  return ctx->IsCancelled() ? Status(StatusCode::CANCELLED, "cancelled") : Status::OK;
}

Status AgentService::ReadStdout(ServerContext* ctx, const v1::ProcessRequest* req, grpc::ServerWriter<v1::IoChunk>* w) {
  return read_output(ctx, req, false, w);
}

Status AgentService::ReadStderr(ServerContext* ctx, const v1::ProcessRequest* req, grpc::ServerWriter<v1::IoChunk>* w) {
  return read_output(ctx, req, true, w);
}

Status AgentService::WriteStdin(ServerContext*, grpc::ServerReader<v1::StdinChunk>* r, v1::Empty*) {
  v1::StdinChunk chunk;
  std::shared_ptr<Process> p;
  while (r->Read(&chunk)) {
    if (!p) {
      auto found = rt_.find_process(chunk.container_id(), chunk.exec_id());
      if (!found) return to_grpc(found.error());
      p = *found;
    }
    if (!chunk.data().empty()) {
      if (auto s = p->write_stdin(chunk.data()); !s) return to_grpc(s.error());
    }
  }
  return Status::OK;
}

Status AgentService::CloseStdin(ServerContext*, const v1::ProcessRequest* req, v1::Empty*) {
  auto p = rt_.find_process(req->container_id(), req->exec_id());
  if (!p) return to_grpc(p.error());
  (*p)->close_stdin();
  return Status::OK;
}

Status AgentService::ResizePty(ServerContext*, const v1::ResizePtyRequest* req, v1::Empty*) {
  auto p = rt_.find_process(req->container_id(), req->exec_id());
  if (!p) return to_grpc(p.error());
  return to_grpc((*p)->resize(req->rows(), req->cols()));
}

}  // namespace husk::agent
