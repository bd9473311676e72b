// The agent's gRPC requests, as a host connection (or anything that reached the agent's vsock port)
// can send them: every unary handler gets protobuf bytes from the input, in any order. The runtime
// runs dry (create/exec check everything and stop before they touch the machine), so a harness on a
// developer's host mounts and forks nothing. Invariants: no crash; no request succeeds that a dry
// runtime cannot carry out; every error has a code the shim maps and a message for a person.
//
// Input: records of [method:1][length:2, little-endian][message bytes].
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "guest-agent/service/agent_service.h"

namespace {

using husk::agent::AgentService;
namespace v1 = husk::agent::v1;

struct Harness {
  husk::agent::Runtime rt{[] {
    husk::agent::RuntimeOptions o;
    o.state_dir = "/nonexistent/husk-agent-fuzz";  // nothing may be made here
    o.dry_run = true;
    return o;
  }()};
  AgentService svc{rt, husk::agent::ServiceOptions{}};
};

Harness& harness() {
  static auto* h = [] {
    // Invalid UTF-8 in a string field is a parse failure; protobuf's log line for each is noise.
    google::protobuf::SetLogHandler(nullptr);
    return std::make_unique<Harness>().release();  // lives for the process: the runtime owns a thread
  }();
  return *h;
}

void check(const grpc::Status& s, bool may_succeed) {
  if (s.ok()) {
    if (!may_succeed) __builtin_trap();
    return;
  }
  if (s.error_message().empty()) __builtin_trap();
  switch (s.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return;
    default:
      __builtin_trap();  // INTERNAL/UNKNOWN for a bad request means a check is missing
  }
}

template <typename Req>
bool parse(Req* r, const uint8_t* p, size_t n) {
  return r->ParseFromArray(p, static_cast<int>(n));
}

void call(uint8_t method, const uint8_t* p, size_t n) {
  auto& h = harness();
  grpc::ServerContext ctx;
  switch (method % 18) {
    case 0: {
      v1::CreateSandboxRequest r;
      v1::Empty out;
      // A host agent refuses every guest-wide setting; an empty request is fine.
      if (parse(&r, p, n)) check(h.svc.CreateSandbox(&ctx, &r, &out), r.hostname().empty() && r.storages_size() == 0 && r.dns_servers_size() == 0);
      break;
    }
    case 1: {
      v1::CreateContainerRequest r;
      v1::CreateContainerResponse out;
      if (parse(&r, p, n)) check(h.svc.CreateContainer(&ctx, &r, &out), false);
      break;
    }
    case 2: {
      v1::ExecProcessRequest r;
      v1::ExecProcessResponse out;
      if (parse(&r, p, n)) check(h.svc.ExecProcess(&ctx, &r, &out), false);
      break;
    }
    case 3: {
      v1::ContainerRequest r;
      v1::Empty out;
      if (parse(&r, p, n)) check(h.svc.StartContainer(&ctx, &r, &out), false);
      break;
    }
    case 4: {
      v1::SignalProcessRequest r;
      v1::Empty out;
      if (parse(&r, p, n)) check(h.svc.SignalProcess(&ctx, &r, &out), false);
      break;
    }
    case 5: {
      v1::ProcessRequest r;
      v1::WaitProcessResponse out;
      if (parse(&r, p, n)) check(h.svc.WaitProcess(&ctx, &r, &out), false);
      break;
    }
    case 6: {
      v1::RemoveContainerRequest r;
      v1::Empty out;
      if (parse(&r, p, n)) check(h.svc.RemoveContainer(&ctx, &r, &out), false);
      break;
    }
    case 7: {
      v1::ContainerRequest r;
      v1::Empty out;
      if (parse(&r, p, n)) check(h.svc.PauseContainer(&ctx, &r, &out), false);
      if (parse(&r, p, n)) check(h.svc.ResumeContainer(&ctx, &r, &out), false);
      break;
    }
    case 8: {
      v1::UpdateContainerRequest r;
      v1::Empty out;
      if (parse(&r, p, n)) check(h.svc.UpdateContainer(&ctx, &r, &out), false);
      break;
    }
    case 9: {
      v1::ContainerRequest r;
      v1::ContainerStats stats;
      v1::ListProcessesResponse ps;
      v1::ContainerState st;
      if (!parse(&r, p, n)) break;
      check(h.svc.StatsContainer(&ctx, &r, &stats), false);
      check(h.svc.ListProcesses(&ctx, &r, &ps), false);
      check(h.svc.StateContainer(&ctx, &r, &st), false);
      break;
    }
    case 10: {
      v1::ProcessRequest r;
      v1::Empty out;
      if (parse(&r, p, n)) check(h.svc.CloseStdin(&ctx, &r, &out), false);
      break;
    }
    case 11: {
      v1::ResizePtyRequest r;
      v1::Empty out;
      if (parse(&r, p, n)) check(h.svc.ResizePty(&ctx, &r, &out), false);
      break;
    }
    case 12: {
      v1::HealthRequest r;
      v1::HealthResponse out;
      if (parse(&r, p, n)) check(h.svc.Health(&ctx, &r, &out), true);
      break;
    }
    case 13: {
      v1::VersionRequest r;
      v1::VersionResponse out;
      if (parse(&r, p, n)) check(h.svc.Version(&ctx, &r, &out), true);
      break;
    }
    case 14: {
      v1::DestroySandboxRequest r;
      v1::Empty out;
      if (parse(&r, p, n)) check(h.svc.DestroySandbox(&ctx, &r, &out), true);
      break;
    }
    case 15: {
      // Network updates: checked field by field, then refused (the harness's agent is a host
      // agent without --configure-network): nothing reaches the machine's interfaces.
      v1::Interface r, out;
      if (parse(&r, p, n)) check(h.svc.UpdateInterface(&ctx, &r, &out), false);
      break;
    }
    case 16: {
      v1::Routes r, out;
      if (parse(&r, p, n)) check(h.svc.UpdateRoutes(&ctx, &r, &out), false);
      break;
    }
    case 17: {
      // A host agent must never reseed the host's CRNG or set its clock.
      v1::RestoredRequest r;
      v1::Empty out;
      if (parse(&r, p, n)) check(h.svc.Restored(&ctx, &r, &out), false);
      break;
    }
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t off = 0;
  while (size - off >= 3) {
    uint8_t method = data[off];
    size_t len = data[off + 1] | (size_t(data[off + 2]) << 8);
    off += 3;
    if (len > size - off) len = size - off;
    call(method, data + off, len);
    off += len;
  }
  return 0;
}
