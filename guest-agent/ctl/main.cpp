// husk-agentctl: talks to husk-agent from the host, one call per command; `run` is create +
// start + I/O + wait + remove, with the container's exit status as its own (like `runc run`).
#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "guest-agent/client/connect.h"
#include "guest-agent/client/restored.h"
#include "guest-agent/client/stdio.h"
#include "proto/agent.grpc.pb.h"

using namespace husk;
namespace v1 = husk::agent::v1;
using json = nlohmann::json;

namespace {

struct Opts {
  std::string address = "unix:/run/husk-agent.sock";
  int timeout_ms = 10000;
  std::string id, exec_id, bundle, virtiofs, subpath, block, fstype, resources;
  bool stdin_ = false, tty = false, all = false, force = false, keep = false, null_io = false, timing = false;
  std::string signal = "TERM";
  std::vector<std::string> args;
};

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "husk-agentctl: %s\n", msg.c_str());
  std::exit(125);
}

void check(const grpc::Status& s, const char* what) {
  if (!s.ok()) die(std::string(what) + ": " + s.error_message() + " (code " + std::to_string(s.error_code()) + ")");
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) die("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

json bundle_config(const Opts& o) {
  if (o.bundle.empty()) die("--bundle DIR is needed");
  try {
    return json::parse(read_file(o.bundle + "/config.json"));
  } catch (const json::exception& e) {
    die(o.bundle + "/config.json: " + e.what());
  }
}

int signal_number(const std::string& s) {
  if (!s.empty() && std::isdigit(static_cast<unsigned char>(s[0]))) return std::atoi(s.c_str());
  std::string n = s.rfind("SIG", 0) == 0 ? s.substr(3) : s;
  static const std::map<std::string, int> m = {{"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
                                               {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"CONT", SIGCONT},
                                               {"STOP", SIGSTOP}, {"WINCH", SIGWINCH}};
  auto it = m.find(n);
  if (it == m.end()) die("unknown signal " + s);
  return it->second;
}

void print_json(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions po;
  po.add_whitespace = true;
  po.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, po);
  std::fputs(out.c_str(), stdout);
}

// Copies one output stream to `fd` until it ends.
std::thread pump(v1::Agent::Stub* stub, const std::string& cid, const std::string& eid, bool err, int fd) {
  return std::thread([=] {
    grpc::ClientContext ctx;
    agent_client::copy_output(*stub, ctx, cid, eid, err, fd);
  });
}

// Forwards our stdin to the process; closes its stdin at EOF. Detached: it may block in read.
void forward_stdin(v1::Agent::Stub* stub, const std::string& cid, const std::string& eid) {
  std::thread([=] {
    grpc::ClientContext ctx;
    agent_client::copy_input(*stub, ctx, cid, eid, 0);
  }).detach();
}

int wait_process(v1::Agent::Stub* stub, const std::string& cid, const std::string& eid) {
  grpc::ClientContext ctx;
  v1::ProcessRequest req;
  req.set_container_id(cid);
  req.set_exec_id(eid);
  v1::WaitProcessResponse resp;
  check(stub->WaitProcess(&ctx, req, &resp), "wait");
  return resp.exit_status();
}

v1::CreateContainerRequest create_request(const Opts& o) {
  json cfg = bundle_config(o);
  v1::CreateContainerRequest req;
  req.set_id(o.id);
  req.set_stdio(o.null_io ? v1::STDIO_NULL : v1::STDIO_STREAM);
  if (!o.virtiofs.empty()) {
    req.mutable_rootfs()->set_virtiofs_tag(o.virtiofs);
    req.mutable_rootfs()->set_subpath(o.subpath);
  } else if (!o.block.empty()) {
    req.mutable_rootfs()->set_block_device(o.block);
    req.mutable_rootfs()->set_fstype(o.fstype);
    req.mutable_rootfs()->set_subpath(o.subpath);
  } else if (cfg.contains("root") && cfg["root"].is_object() && cfg["root"].contains("path") && cfg["root"]["path"].is_string()) {
    std::string p = cfg["root"]["path"];
    if (p.empty() || p[0] != '/') {
      char abs[4096];
      if (!realpath(o.bundle.c_str(), abs)) die("bundle " + o.bundle + " not found");
      p = std::string(abs) + "/" + p;
    }
    req.mutable_rootfs()->set_path(p);
  }
  req.set_config_json(cfg.dump());
  return req;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  Opts o;
  CLI::App app{"husk-agentctl: drive husk-agent over gRPC"};
  app.require_subcommand(1);
  app.add_option("--address", o.address, "unix:PATH, hvsock:UDS:PORT or vsock:CID:PORT");
  app.add_option("--timeout-ms", o.timeout_ms, "how long to keep trying to reach the agent");
  auto id = [&](CLI::App* c) { c->add_option("--id", o.id, "container id")->required(); };
  auto bundle = [&](CLI::App* c) {
    c->add_option("--bundle", o.bundle, "OCI bundle directory (config.json; root.path relative to it)");
    c->add_option("--virtiofs", o.virtiofs, "rootfs: mount this virtio-fs tag in the guest");
    c->add_option("--block", o.block, "rootfs: mount this block device in the guest");
    c->add_option("--fstype", o.fstype, "filesystem of --block");
    c->add_option("--subpath", o.subpath, "directory inside the virtio-fs share or block device");
    c->add_flag("--null-io", o.null_io, "/dev/null for stdio");
  };
  auto* run = app.add_subcommand("run", "create, start, stream output, wait, remove; exit with the container's status");
  id(run);
  bundle(run);
  run->add_flag("-i,--stdin", o.stdin_, "forward our stdin");
  run->add_flag("--keep", o.keep, "do not remove the container afterwards");
  run->add_flag("--timing", o.timing, "print how long each step took (stderr)");
  auto* create = app.add_subcommand("create", "create a container (prints its pid)");
  id(create);
  bundle(create);
  auto* start = app.add_subcommand("start", "start a created container");
  id(start);
  auto* attach = app.add_subcommand("attach", "stream a process's output until it ends");
  id(attach);
  attach->add_option("--exec-id", o.exec_id);
  auto* exec = app.add_subcommand("exec", "run a process in a container (its process from --bundle with new args)");
  id(exec);
  exec->add_option("--exec-id", o.exec_id)->required();
  exec->add_option("--bundle", o.bundle, "bundle whose config.json process is the template");
  exec->add_flag("-t,--tty", o.tty, "allocate a terminal");
  exec->add_flag("-i,--stdin", o.stdin_, "forward our stdin");
  exec->add_option("args", o.args, "command")->required();
  auto* kill_ = app.add_subcommand("kill", "signal a process (or --all)");
  id(kill_);
  kill_->add_option("--exec-id", o.exec_id);
  kill_->add_flag("--all", o.all);
  kill_->add_option("signal", o.signal, "name or number (default TERM)");
  auto* wait = app.add_subcommand("wait", "wait for a process; exit with its status");
  id(wait);
  wait->add_option("--exec-id", o.exec_id);
  auto* rm = app.add_subcommand("rm", "remove a container");
  id(rm);
  rm->add_flag("-f,--force", o.force);
  auto* pause = app.add_subcommand("pause", "freeze a container");
  id(pause);
  auto* resume = app.add_subcommand("resume", "thaw a container");
  id(resume);
  auto* stats = app.add_subcommand("stats", "cgroup statistics as JSON");
  id(stats);
  auto* ps = app.add_subcommand("ps", "processes of a container");
  id(ps);
  auto* state = app.add_subcommand("state", "container state as JSON");
  id(state);
  auto* update = app.add_subcommand("update", "apply LinuxResources JSON from a file");
  id(update);
  update->add_option("--resources", o.resources)->required();
  auto* oom = app.add_subcommand("oom-events", "print OOM events as they happen");
  auto* details = app.add_subcommand("details", "guest details as JSON");
  auto* version = app.add_subcommand("version", "agent version");
  auto* destroy = app.add_subcommand("destroy-sandbox", "remove every container and shut the agent down");
  auto* restored = app.add_subcommand("restored", "after a snapshot restore: reseed the guest's CRNG from ours, set its clock to ours");
  CLI11_PARSE(app, argc, argv);

  auto t0 = std::chrono::steady_clock::now();
  auto ch = agent_client::connect(o.address, std::chrono::milliseconds(o.timeout_ms));
  if (!ch) die(ch.error().message);
  auto stub = v1::Agent::NewStub(*ch);
  v1::Empty empty;
  v1::ContainerRequest creq;
  creq.set_container_id(o.id);

  auto step = [&, last = t0](const char* what) mutable {
    if (!o.timing) return;
    auto now = std::chrono::steady_clock::now();
    std::fprintf(stderr, "timing: %-8s %7.2f ms\n", what, std::chrono::duration<double, std::milli>(now - last).count());
    last = now;
  };
  step("connect");
  if (*run || *create) {
    auto req = create_request(o);
    grpc::ClientContext ctx;
    v1::CreateContainerResponse resp;
    check(stub->CreateContainer(&ctx, req, &resp), "create");
    step("create");
    if (*create) {
      std::printf("%d\n", resp.pid());
      return 0;
    }
    std::thread out, err;
    if (!o.null_io) {
      out = pump(stub.get(), o.id, "", false, 1);
      err = pump(stub.get(), o.id, "", true, 2);
      if (o.stdin_) forward_stdin(stub.get(), o.id, "");
    }
    grpc::ClientContext sctx;
    auto s = stub->StartContainer(&sctx, creq, &empty);
    step("start");
    int status = 125;
    if (s.ok()) {
      status = wait_process(stub.get(), o.id, "");
      step("wait");
    } else {
      std::fprintf(stderr, "husk-agentctl: start: %s\n", s.error_message().c_str());
    }
    if (out.joinable()) out.join();
    if (err.joinable()) err.join();
    if (!o.keep) {
      grpc::ClientContext rctx;
      v1::RemoveContainerRequest rr;
      rr.set_container_id(o.id);
      rr.set_force(true);
      check(stub->RemoveContainer(&rctx, rr, &empty), "remove");
      step("remove");
    }
    return status;
  }
  grpc::ClientContext ctx;
  if (*start) check(stub->StartContainer(&ctx, creq, &empty), "start");
  if (*attach) {
    auto out = pump(stub.get(), o.id, o.exec_id, false, 1);
    auto err = pump(stub.get(), o.id, o.exec_id, true, 2);
    out.join();
    err.join();
  }
  if (*exec) {
    json proc = json::object();
    if (!o.bundle.empty()) proc = bundle_config(o).value("process", json::object());
    proc["args"] = o.args;
    proc["terminal"] = o.tty;
    if (!proc.contains("cwd")) proc["cwd"] = "/";
    v1::ExecProcessRequest req;
    req.set_container_id(o.id);
    req.set_exec_id(o.exec_id);
    req.set_process_json(proc.dump());
    req.set_stdio(v1::STDIO_STREAM);
    v1::ExecProcessResponse resp;
    check(stub->ExecProcess(&ctx, req, &resp), "exec");
    auto out = pump(stub.get(), o.id, o.exec_id, false, 1);
    auto err = pump(stub.get(), o.id, o.exec_id, true, 2);
    if (o.stdin_) forward_stdin(stub.get(), o.id, o.exec_id);
    int status = wait_process(stub.get(), o.id, o.exec_id);
    out.join();
    err.join();
    return status;
  }
  if (*kill_) {
    v1::SignalProcessRequest req;
    req.set_container_id(o.id);
    req.set_exec_id(o.exec_id);
    req.set_signal(signal_number(o.signal));
    req.set_all(o.all);
    check(stub->SignalProcess(&ctx, req, &empty), "kill");
  }
  if (*wait) return wait_process(stub.get(), o.id, o.exec_id);
  if (*rm) {
    v1::RemoveContainerRequest req;
    req.set_container_id(o.id);
    req.set_force(o.force);
    check(stub->RemoveContainer(&ctx, req, &empty), "rm");
  }
  if (*pause) check(stub->PauseContainer(&ctx, creq, &empty), "pause");
  if (*resume) check(stub->ResumeContainer(&ctx, creq, &empty), "resume");
  if (*stats) {
    v1::ContainerStats resp;
    check(stub->StatsContainer(&ctx, creq, &resp), "stats");
    print_json(resp);
  }
  if (*ps) {
    v1::ListProcessesResponse resp;
    check(stub->ListProcesses(&ctx, creq, &resp), "ps");
    for (const auto& p : resp.processes()) std::printf("%d %s\n", p.pid(), p.exec_id().c_str());
  }
  if (*state) {
    v1::ContainerState resp;
    check(stub->StateContainer(&ctx, creq, &resp), "state");
    print_json(resp);
  }
  if (*update) {
    v1::UpdateContainerRequest req;
    req.set_container_id(o.id);
    req.set_resources_json(read_file(o.resources));
    check(stub->UpdateContainer(&ctx, req, &empty), "update");
  }
  if (*oom) {
    v1::OomEventsRequest req;
    auto r = stub->GetOomEvents(&ctx, req);
    v1::OomEvent ev;
    while (r->Read(&ev)) {
      std::printf("oom %s\n", ev.container_id().c_str());
      std::fflush(stdout);
    }
  }
  if (*details) {
    v1::GuestDetails resp;
    check(stub->GetGuestDetails(&ctx, v1::GuestDetailsRequest(), &resp), "details");
    print_json(resp);
  }
  if (*version) {
    v1::VersionResponse resp;
    check(stub->Version(&ctx, v1::VersionRequest(), &resp), "version");
    std::printf("agent %s api %u\n", resp.agent_version().c_str(), resp.api_version());
  }
  if (*restored) {
    auto req = agent_client::restored_request();
    if (!req) die(req.error().message);
    check(stub->Restored(&ctx, *req, &empty), "restored");
  }
  if (*destroy) check(stub->DestroySandbox(&ctx, v1::DestroySandboxRequest(), &empty), "destroy-sandbox");
  return 0;
}
