// husk-vmm's control API: HTTP/1.1 on a unix socket with Firecracker's endpoints and JSON shapes,
// so tools written for Firecracker's snapshot API drive husk-vmm too.
//   GET   /vm                 -> {"state": "Running" | "Paused"}
//   PATCH /vm                 {"state": "Paused" | "Resumed"}
//   PUT   /snapshot/create    {"snapshot_path": STATE, "mem_file_path": MEM}  (a paused VM only)
//   GET   /metrics            {"uptime_ms", "state", "vcpus": {...}, "virtio": [...]}: counters
//   PUT   /snapshot/load      {"snapshot_path": STATE, "mem_backend": {"backend_path": MEM,
//                              "backend_type": "File"}, "resume_vm": BOOL}  (or "mem_file_path":
//                              MEM), only to a husk-vmm started with --api and no VM: it builds
//                              the VM from the snapshot, paused unless resume_vm is true
// Success is 204 (200 with a body for GET); a refused request is 400 with
// {"fault_message": "..."}, a known path with the wrong method 405, an unknown path 404.
// Served on the event loop, one connection at a time; requests are bounded in size and time.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>

#include "common/result.h"

namespace husk::api {

// What the API can do to the VM; each runs on the event loop thread.
struct Handlers {
  std::function<Status()> pause;
  std::function<Status()> resume;
  std::function<bool()> paused;
  std::function<Status(const std::string& state_path, const std::string& mem_path)> snapshot_create;
  // Set only while there is no VM yet (husk-vmm --api alone); then every other handler refuses.
  std::function<Status(const std::string& state_path, const std::string& mem_path, bool resume)> snapshot_load;
  // After a successful load's answer went out.
  std::function<void()> loaded;
  // GET /metrics: the VM's counters as a JSON object (vCPU exits, per-device notifications and
  // interrupts); unset before a VM exists.
  std::function<std::string()> metrics;
};

struct Response {
  unsigned status = 204;
  std::string body;  // JSON, or empty
  std::function<void()> then;  // runs once the response is written
};

// One request, independent of the transport (unit tests and the fuzzer call it directly).
Response handle(const std::string& method, const std::string& target, const std::string& body,
                const Handlers& handlers);

class Server {
 public:
  static constexpr size_t kMaxRequestBytes = 16 * 1024;
  static constexpr int kRequestTimeoutSeconds = 10;

  // Listens on `path` (created; removed by the destructor) or on the inherited listening socket
  // `fd` (>= 0), and serves on `io`.
  static Result<std::unique_ptr<Server>> start(boost::asio::io_context& io, const std::string& path, int fd,
                                               Handlers handlers);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace husk::api
