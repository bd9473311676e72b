#include "vmm/api/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "common/log.h"

namespace husk::api {
namespace {

namespace http = boost::beast::http;
using Json = nlohmann::json;
using boost::asio::local::stream_protocol;

Response fault(unsigned status, const std::string& message) {
  return Response{status, Json{{"fault_message", message}}.dump(), nullptr};
}

Response from_status(const Status& s) {
  if (s) return Response{};
  return fault(400, s.error().message);
}

// The body as a JSON object whose fields are all strings, or an error for the client.
Result<Json> object_of_strings(const std::string& body, std::initializer_list<const char*> required) {
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return make_error("the request body must be a JSON object");
  for (auto& [key, value] : j.items())
    if (!value.is_string()) return make_error("field '%s' must be a string", key.c_str());
  for (const char* key : required)
    if (!j.contains(key) || j[key].get_ref<const std::string&>().empty())
      return make_error("field '%s' is required", key);
  return j;
}

Response vm(const std::string& method, const std::string& body, const Handlers& h) {
  if (method == "GET") return Response{200, Json{{"state", h.paused() ? "Paused" : "Running"}}.dump(), nullptr};
  if (method != "PATCH") return fault(405, "/vm takes GET or PATCH");
  auto j = object_of_strings(body, {"state"});
  if (!j) return fault(400, j.error().message);
  if (j->size() != 1) return fault(400, "PATCH /vm takes only the field 'state'");
  const auto& state = (*j)["state"].get_ref<const std::string&>();
  if (state == "Paused") return from_status(h.pause());
  if (state == "Resumed") return from_status(h.resume());
  return fault(400, "state must be \"Paused\" or \"Resumed\"");
}

Response snapshot_create(const std::string& method, const std::string& body, const Handlers& h) {
  if (method != "PUT") return fault(405, "/snapshot/create takes PUT");
  auto j = object_of_strings(body, {"snapshot_path", "mem_file_path"});
  if (!j) return fault(400, j.error().message);
  for (auto& [key, value] : j->items())
    if (key != "snapshot_path" && key != "mem_file_path" && key != "snapshot_type")
      return fault(400, "unknown field '" + key + "'");
  if (j->contains("snapshot_type") && (*j)["snapshot_type"] != "Full")
    return fault(400, "only \"Full\" snapshots are supported");
  const auto& state = (*j)["snapshot_path"].get_ref<const std::string&>();
  const auto& mem = (*j)["mem_file_path"].get_ref<const std::string&>();
  if (state == mem) return fault(400, "snapshot_path and mem_file_path must differ");
  return from_status(h.snapshot_create(state, mem));
}

// Firecracker's shape: the memory file as mem_backend {backend_path, backend_type "File"} or
// the older mem_file_path; diff snapshots and userfaultfd backends are not ours.
Response snapshot_load(const std::string& method, const std::string& body, const Handlers& h) {
  if (method != "PUT") return fault(405, "/snapshot/load takes PUT");
  if (!h.snapshot_load)
    return fault(400, "this husk-vmm already runs a VM: a snapshot is loaded by a husk-vmm started with --api and no "
                      "--kernel or --restore (or at its start: --restore STATE,MEM)");
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return fault(400, "the request body must be a JSON object");
  std::string state, mem;
  bool resume = false;
  for (auto& [key, value] : j.items()) {
    if (key == "snapshot_path" || key == "mem_file_path") {
      if (!value.is_string() || value.get_ref<const std::string&>().empty()) return fault(400, "field '" + key + "' must be a non-empty string");
      (key == "snapshot_path" ? state : mem) = value.get<std::string>();
    } else if (key == "mem_backend") {
      if (!value.is_object()) return fault(400, "field 'mem_backend' must be an object");
      for (auto& [k, v] : value.items())
        if (k != "backend_path" && k != "backend_type") return fault(400, "unknown field 'mem_backend." + k + "'");
      if (!value.contains("backend_type") || value["backend_type"] != "File")
        return fault(400, "mem_backend.backend_type must be \"File\" (husk-vmm maps the memory file MAP_PRIVATE)");
      if (!value.contains("backend_path") || !value["backend_path"].is_string() || value["backend_path"].get_ref<const std::string&>().empty())
        return fault(400, "field 'mem_backend.backend_path' must be a non-empty string");
      if (!mem.empty()) return fault(400, "give the memory file once: mem_backend or mem_file_path");
      mem = value["backend_path"].get<std::string>();
    } else if (key == "resume_vm" || key == "enable_diff_snapshots") {
      if (!value.is_boolean()) return fault(400, "field '" + key + "' must be true or false");
      if (key == "enable_diff_snapshots" && value.get<bool>()) return fault(400, "diff snapshots are not supported");
      if (key == "resume_vm") resume = value.get<bool>();
    } else {
      return fault(400, "unknown field '" + key + "'");
    }
  }
  if (state.empty()) return fault(400, "field 'snapshot_path' is required");
  if (mem.empty()) return fault(400, "field 'mem_backend' (or 'mem_file_path') is required");
  if (j.contains("mem_backend") && j.contains("mem_file_path")) return fault(400, "give the memory file once: mem_backend or mem_file_path");
  if (state == mem) return fault(400, "the state and memory files must differ");
  Response r = from_status(h.snapshot_load(state, mem, resume));
  if (r.status == 204) r.then = h.loaded;
  return r;
}

// Before a snapshot is loaded there is no VM to pause, resume or snapshot.
bool no_vm_yet(const Handlers& h) { return static_cast<bool>(h.snapshot_load); }

}  // namespace

Response handle(const std::string& method, const std::string& target, const std::string& body,
                const Handlers& handlers) {
  if (target == "/snapshot/load") return snapshot_load(method, body, handlers);
  if (target == "/metrics") {
    if (method != "GET") return fault(405, "/metrics takes GET");
    if (!handlers.metrics) return fault(400, "no VM yet: load a snapshot first (PUT /snapshot/load)");
    return Response{200, handlers.metrics(), nullptr};
  }
  if (no_vm_yet(handlers) && (target == "/vm" || target == "/snapshot/create")) {
    if (target == "/vm" && method == "GET") return Response{200, Json{{"state", "Not started"}}.dump(), nullptr};
    return fault(400, "no VM yet: load a snapshot first (PUT /snapshot/load)");
  }
  if (target == "/vm") return vm(method, body, handlers);
  if (target == "/snapshot/create") return snapshot_create(method, body, handlers);
  return fault(404, "no such endpoint: " + target);
}

// One connection at a time: the next is accepted when this one closes. A client that sends
// nothing for kRequestTimeoutSeconds is dropped, so it cannot hold the API.
struct Server::Impl {
  Impl(boost::asio::io_context& ctx, Handlers h) : acceptor(ctx), socket(ctx), timer(ctx), handlers(std::move(h)) {}
  stream_protocol::acceptor acceptor;
  stream_protocol::socket socket;
  boost::asio::steady_timer timer;
  Handlers handlers;
  boost::beast::flat_buffer buffer;
  std::unique_ptr<http::request_parser<http::string_body>> parser;
  http::response<http::string_body> response;
  std::string path;  // removed at the end when we created it
  bool closed = false;

  void accept() {
    acceptor.async_accept(socket, [this](boost::system::error_code ec) {
      if (closed) return;
      if (ec) {
        if (ec != boost::asio::error::operation_aborted) LOG_WARN("api: accept: %s", ec.message().c_str());
        return;
      }
      buffer.clear();
      read();
    });
  }

  void read() {
    parser = std::make_unique<http::request_parser<http::string_body>>();
    parser->body_limit(kMaxRequestBytes);
    parser->header_limit(kMaxRequestBytes);
    timer.expires_after(std::chrono::seconds(kRequestTimeoutSeconds));
    timer.async_wait([this](boost::system::error_code ec) {
      if (!ec) socket.close();
    });
    http::async_read(socket, buffer, *parser, [this](boost::system::error_code ec, size_t) {
      timer.cancel();
      if (closed) return;
      if (ec) {
        if (ec != http::error::end_of_stream && ec != boost::asio::error::operation_aborted)
          reply(fault(400, "bad request: " + ec.message()), false);
        else
          next();
        return;
      }
      const auto& req = parser->get();
      Response r = handle(std::string(req.method_string()), std::string(req.target()), req.body(), handlers);
      reply(r, req.keep_alive());
    });
  }

  void reply(const Response& r, bool keep_alive) {
    response = {};
    response.result(r.status);
    response.version(11);
    response.set(http::field::server, "husk-vmm");
    if (!r.body.empty()) response.set(http::field::content_type, "application/json");
    response.body() = r.body;
    response.keep_alive(keep_alive);
    response.prepare_payload();
    http::async_write(socket, response, [this, keep_alive, then = r.then](boost::system::error_code ec, size_t) {
      if (then) then();
      if (closed) return;
      if (!ec && keep_alive) return read();
      next();
    });
  }

  void next() {
    boost::system::error_code ignored;
    socket.close(ignored);
    accept();
  }
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  impl_->closed = true;
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->socket.close(ignored);
  impl_->timer.cancel();
  if (!impl_->path.empty()) ::unlink(impl_->path.c_str());
}

Result<std::unique_ptr<Server>> Server::start(boost::asio::io_context& io, const std::string& path, int fd,
                                              Handlers handlers) {
  auto impl = std::make_unique<Impl>(io, std::move(handlers));
  boost::system::error_code ec;
  if (fd >= 0) {
    impl->acceptor.assign(stream_protocol(), fd, ec);
    if (ec) return make_error("--api fd=%d: %s", fd, ec.message().c_str());
  } else {
    ::unlink(path.c_str());  // a stale socket from an earlier run
    impl->acceptor.open(stream_protocol(), ec);
    if (!ec) impl->acceptor.bind(stream_protocol::endpoint(path), ec);
    // Only its owner may pause the VM or have it write files.
    if (!ec && ::chmod(path.c_str(), 0600) != 0) ec = boost::system::error_code(errno, boost::system::system_category());
    if (!ec) impl->acceptor.listen(4, ec);
    if (ec) return make_error("--api %s: %s", path.c_str(), ec.message().c_str());
    impl->path = path;
  }
  impl->accept();
  return std::unique_ptr<Server>(new Server(std::move(impl)));  // NOLINT: private constructor
}

}  // namespace husk::api
