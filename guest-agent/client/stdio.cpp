#include "guest-agent/client/stdio.h"

#include <unistd.h>

#include <cerrno>

namespace husk::agent_client {

namespace v1 = agent::v1;

void copy_output(v1::Agent::Stub& stub, grpc::ClientContext& ctx, const std::string& cid, const std::string& eid,
                 bool stderr_stream, int fd) {
  v1::ProcessRequest req;
  req.set_container_id(cid);
  req.set_exec_id(eid);
  auto reader = stderr_stream ? stub.ReadStderr(&ctx, req) : stub.ReadStdout(&ctx, req);
  v1::IoChunk chunk;
  bool writable = true;
  while (writable && reader->Read(&chunk)) {
    const std::string& d = chunk.data();
    for (size_t off = 0; off < d.size();) {
      ssize_t n = ::write(fd, d.data() + off, d.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        writable = false;
        break;
      }
      off += static_cast<size_t>(n);
    }
  }
  if (!writable) ctx.TryCancel();
  (void)reader->Finish();
}

void copy_input(v1::Agent::Stub& stub, grpc::ClientContext& ctx, const std::string& cid, const std::string& eid, int fd) {
  v1::Empty e;
  auto w = stub.WriteStdin(&ctx, &e);
  v1::StdinChunk c;
  c.set_container_id(cid);
  c.set_exec_id(eid);
  w->Write(c);  // names the process even if no data ever comes
  char buf[32768];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n < 0) continue;
    c.set_data(std::string(buf, static_cast<size_t>(n)));
    if (!w->Write(c)) break;
  }
  w->WritesDone();
  (void)w->Finish();
  grpc::ClientContext close_ctx;
  close_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ProcessRequest req;
  req.set_container_id(cid);
  req.set_exec_id(eid);
  (void)stub.CloseStdin(&close_ctx, req, &e);
}

}  // namespace husk::agent_client
