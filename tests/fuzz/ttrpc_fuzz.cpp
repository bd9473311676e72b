// libFuzzer target: whatever a client sends on the shim's ttrpc socket, down to containerd's Task
// service. The input is a connection's byte stream: frames of any length, stream id, type and
// flags, cut anywhere; each request frame is checked as the server checks it (shim/ttrpc/frame.h,
// at most 4 MiB, odd client stream ids, a parsable Request) and handed to the real
// TaskService's handler for its method, with any payload — before any sandbox exists (its
// factory fails), as on a fresh shim. Nothing may crash, and every call must answer.
#include <cstdint>
#include <string>

#include "shim/task_service.h"
#include "shim/ttrpc/frame.h"
#include "proto/ttrpc.pb.h"

using husk::ErrorCode;
using husk::Result;
using husk::make_error;
namespace shim = husk::shim;
namespace wire = husk::ttrpc;

namespace {
struct NullSink : shim::EventSink {
  bool publish(const google::protobuf::Message&) override { return true; }
  void drain() override {}
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static NullSink sink;
  shim::TaskService tasks("fuzz", "sandbox", &sink, [] {},
                          [](const shim::Config&, const std::string&) -> Result<std::shared_ptr<shim::Sandbox>> {
                            return make_error(ErrorCode::kUnavailable, "no sandboxes while fuzzing");
                          });
  auto handlers = tasks.handlers();
  size_t pos = 0;
  while (pos + wire::kHeaderSize <= size) {
    wire::FrameHeader h = wire::decode_header(data + pos);
    pos += wire::kHeaderSize;
    if (h.length > wire::kMaxData || h.length > size - pos) break;  // the server drops or waits for it
    std::string body(reinterpret_cast<const char*>(data + pos), h.length);
    pos += h.length;
    if (h.type != wire::kTypeRequest || h.stream_id == 0 || h.stream_id % 2 == 0) continue;
    ::ttrpc::Request req;
    if (!req.ParseFromString(body)) continue;
    if (req.service() != shim::TaskService::kServiceName) continue;
    auto it = handlers.find(req.method());
    if (it == handlers.end()) continue;
    wire::CallContext ctx;
    ctx.service = req.service();
    ctx.method = req.method();
    // Wait on a task that exists would block; none exists without a sandbox.
    wire::Reply r = it->second(req.payload(), ctx);
    ::ttrpc::Response resp;
    resp.mutable_status()->set_code(r.code);
    resp.set_payload(r.payload);
    (void)resp.SerializeAsString();
  }
  return 0;
}
