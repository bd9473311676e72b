// The gRPC face of the agent: thin handlers over Runtime plus the sandbox-wide calls.
#pragma once

#include <atomic>
#include <functional>

#include "guest-agent/runtime/runtime.h"
#include "proto/agent.grpc.pb.h"

namespace husk::agent {

inline constexpr uint32_t kApiVersion = 1;
inline constexpr const char* kAgentVersion = "0.1.0";

struct ServiceOptions {
  bool guest = false;  // PID 1 in a microVM: sandbox calls touch the whole guest
  // UpdateInterface/UpdateRoutes change the agent's network namespace: always in a guest; on a
  // host only when asked for (--configure-network), lest they rewire the host.
  bool configure_network = false;
  std::function<void()> on_destroy;  // after DestroySandbox has answered
};

class AgentService final : public v1::Agent::Service {
 public:
  AgentService(Runtime& rt, ServiceOptions opts) : rt_(rt), opts_(std::move(opts)) {}

  grpc::Status Health(grpc::ServerContext*, const v1::HealthRequest*, v1::HealthResponse*) override;
  grpc::Status Version(grpc::ServerContext*, const v1::VersionRequest*, v1::VersionResponse*) override;
  grpc::Status CreateSandbox(grpc::ServerContext*, const v1::CreateSandboxRequest*, v1::Empty*) override;
  grpc::Status DestroySandbox(grpc::ServerContext*, const v1::DestroySandboxRequest*, v1::Empty*) override;
  grpc::Status GetGuestDetails(grpc::ServerContext*, const v1::GuestDetailsRequest*, v1::GuestDetails*) override;
  grpc::Status Restored(grpc::ServerContext*, const v1::RestoredRequest*, v1::Empty*) override;
  grpc::Status CreateContainer(grpc::ServerContext*, const v1::CreateContainerRequest*, v1::CreateContainerResponse*) override;
  grpc::Status StartContainer(grpc::ServerContext*, const v1::ContainerRequest*, v1::Empty*) override;
  grpc::Status ExecProcess(grpc::ServerContext*, const v1::ExecProcessRequest*, v1::ExecProcessResponse*) override;
  grpc::Status SignalProcess(grpc::ServerContext*, const v1::SignalProcessRequest*, v1::Empty*) override;
  grpc::Status WaitProcess(grpc::ServerContext*, const v1::ProcessRequest*, v1::WaitProcessResponse*) override;
  grpc::Status RemoveContainer(grpc::ServerContext*, const v1::RemoveContainerRequest*, v1::Empty*) override;
  grpc::Status PauseContainer(grpc::ServerContext*, const v1::ContainerRequest*, v1::Empty*) override;
  grpc::Status ResumeContainer(grpc::ServerContext*, const v1::ContainerRequest*, v1::Empty*) override;
  grpc::Status UpdateContainer(grpc::ServerContext*, const v1::UpdateContainerRequest*, v1::Empty*) override;
  grpc::Status StatsContainer(grpc::ServerContext*, const v1::ContainerRequest*, v1::ContainerStats*) override;
  grpc::Status ListProcesses(grpc::ServerContext*, const v1::ContainerRequest*, v1::ListProcessesResponse*) override;
  grpc::Status StateContainer(grpc::ServerContext*, const v1::ContainerRequest*, v1::ContainerState*) override;
  grpc::Status GetOomEvents(grpc::ServerContext*, const v1::OomEventsRequest*, grpc::ServerWriter<v1::OomEvent>*) override;
  grpc::Status ReadStdout(grpc::ServerContext*, const v1::ProcessRequest*, grpc::ServerWriter<v1::IoChunk>*) override;
  grpc::Status ReadStderr(grpc::ServerContext*, const v1::ProcessRequest*, grpc::ServerWriter<v1::IoChunk>*) override;
  grpc::Status WriteStdin(grpc::ServerContext*, grpc::ServerReader<v1::StdinChunk>*, v1::Empty*) override;
  grpc::Status CloseStdin(grpc::ServerContext*, const v1::ProcessRequest*, v1::Empty*) override;
  grpc::Status ResizePty(grpc::ServerContext*, const v1::ResizePtyRequest*, v1::Empty*) override;
  // network.cpp
  grpc::Status UpdateInterface(grpc::ServerContext*, const v1::Interface*, v1::Interface*) override;
  grpc::Status UpdateRoutes(grpc::ServerContext*, const v1::Routes*, v1::Routes*) override;
  grpc::Status ListInterfaces(grpc::ServerContext*, const v1::ListInterfacesRequest*, v1::Interfaces*) override;
  grpc::Status ListRoutes(grpc::ServerContext*, const v1::ListRoutesRequest*, v1::Routes*) override;

 private:
  grpc::Status read_output(grpc::ServerContext* ctx, const v1::ProcessRequest* req, bool err,
                           grpc::ServerWriter<v1::IoChunk>* w);
  Runtime& rt_;
  ServiceOptions opts_;
  std::atomic<bool> destroyed_{false};
};

}  // namespace husk::agent
