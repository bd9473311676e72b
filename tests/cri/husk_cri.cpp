// husk-cri: a small CRI client for the tests (Debian has no crictl), talking to containerd's CRI
// plugin the way the kubelet does. Configs are JSON files in crictl's format (the CRI messages'
// JSON form). Subcommands print ids or JSON and exit non-zero with the runtime's error.
//
//   husk-cri [-r unix:///run/containerd/containerd.sock] [-t SECONDS] COMMAND ...
//   version | runp POD.json [HANDLER] | stopp POD | rmp POD | inspectp POD | pods
//   create POD CONTAINER.json POD.json | start CID | stop CID [TIMEOUT] | rm CID | inspect CID
//   ps [POD] | exec CID CMD [ARG...]   (ExecSync: its stdout/stderr, its exit code)
//   stream [-i TEXT] [-tty] CID CMD [ARG...]   (Exec through containerd's streaming server, as
//                                               `kubectl exec [-i] [-t]` does: TEXT as stdin)
//   attach [-i TEXT] [-tty] CID                 (Attach to the container's process, the same way)
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "cri.grpc.pb.h"

namespace {

namespace cri = runtime::v1;

int usage() {
  std::fprintf(stderr,
               "usage: husk-cri [-r ENDPOINT] [-t SECONDS] version | runp POD.json [HANDLER] | stopp POD | rmp POD |\n"
               "       inspectp POD | pods | create POD CONTAINER.json POD.json | start CID | stop CID [TIMEOUT] |\n"
               "       rm CID | inspect CID | ps [POD] | exec CID CMD [ARG...] |\n"
               "       stream [-i TEXT] [-tty] CID CMD [ARG...] | attach [-i TEXT] [-tty] CID\n");
  return 2;
}

template <typename Msg>
bool load_json(const std::string& path, Msg* out) {
  std::ifstream f(path);
  if (!f) {
    std::fprintf(stderr, "husk-cri: cannot read %s\n", path.c_str());
    return false;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;  // crictl's files carry fields this client does not model
  auto st = google::protobuf::util::JsonStringToMessage(ss.str(), out, opts);
  if (!st.ok()) {
    std::fprintf(stderr, "husk-cri: %s: %s\n", path.c_str(), st.ToString().c_str());
    return false;
  }
  return true;
}

template <typename Msg>
void print_json(const Msg& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;  // SANDBOX_READY and CONTAINER_CREATED are 0
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  std::cout << out;
}

const char* state_name(cri::ContainerState s) {
  switch (s) {
    case cri::CONTAINER_CREATED: return "CREATED";
    case cri::CONTAINER_RUNNING: return "RUNNING";
    case cri::CONTAINER_EXITED: return "EXITED";
    default: return "UNKNOWN";
  }
}

// The streaming server's WebSocket protocol "v4.channel.k8s.io" (what it serves besides SPDY):
// every binary message starts with its channel — 0 stdin, 1 stdout, 2 stderr, 3 the command's
// final Status as JSON, 4 terminal resizes. The server closes the socket when the command ends.
// Returns the command's exit code, or 255 when streaming failed. Exec and Attach alike.
int stream_session(const std::string& url, const std::string* input) {
  namespace beast = boost::beast;
  namespace websocket = beast::websocket;
  auto scheme = url.find("://");
  auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  auto colon = url.rfind(':', slash);
  if (scheme == std::string::npos || slash == std::string::npos || colon == std::string::npos || colon < scheme + 3) {
    std::fprintf(stderr, "husk-cri: cannot stream from \"%s\"\n", url.c_str());
    return 255;
  }
  std::string host = url.substr(scheme + 3, colon - scheme - 3), port = url.substr(colon + 1, slash - colon - 1);
  try {
    boost::asio::io_context io;
    boost::asio::ip::tcp::resolver resolver(io);
    websocket::stream<beast::tcp_stream> ws(io);
    beast::get_lowest_layer(ws).connect(resolver.resolve(host, port));
    ws.set_option(websocket::stream_base::decorator(
        [](websocket::request_type& req) { req.set(beast::http::field::sec_websocket_protocol, "v4.channel.k8s.io"); }));
    websocket::response_type answer;
    ws.handshake(answer, host + ":" + port, url.substr(slash));
    if (answer[beast::http::field::sec_websocket_protocol] != "v4.channel.k8s.io") {
      std::fprintf(stderr, "husk-cri: the streaming server chose protocol \"%s\"\n",
                   std::string(answer[beast::http::field::sec_websocket_protocol]).c_str());
      return 255;
    }
    ws.binary(true);
    if (input) {
      std::string m(1, '\0');
      m += *input;
      ws.write(boost::asio::buffer(m));
    }
    std::string status;
    for (;;) {
      beast::flat_buffer buf;
      beast::error_code ec;
      ws.read(buf, ec);
      if (ec) break;  // closed: the command ended
      std::string m = beast::buffers_to_string(buf.data());
      if (m.size() < 2) continue;  // the server opens each channel with an empty message
      if (m[0] == 1) std::cout << m.substr(1) << std::flush;
      else if (m[0] == 2) std::cerr << m.substr(1) << std::flush;
      else if (m[0] == 3) status += m.substr(1);
    }
    // {"status": "Success"}, or Failure with details.causes [{"reason": "ExitCode", "message": "7"}].
    if (status.empty()) {
      std::fprintf(stderr, "husk-cri: the stream closed without the command's status\n");
      return 255;
    }
    auto j = nlohmann::json::parse(status);
    if (j.value("status", "") == "Success") return 0;
    for (const auto& c : j["details"]["causes"])
      if (c.value("reason", "") == "ExitCode") return std::stoi(c.value("message", "255"));
    std::fprintf(stderr, "husk-cri: %s\n", status.c_str());
    return 255;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "husk-cri: streaming from %s: %s\n", url.c_str(), e.what());
    return 255;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string endpoint = "unix:///run/containerd/containerd.sock";
  int timeout_s = 300;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i += 2) {
    if (i + 1 >= argc) return usage();
    std::string opt = argv[i];
    if (opt == "-r") endpoint = argv[i + 1];
    else if (opt == "-t") timeout_s = std::atoi(argv[i + 1]);
    else return usage();
  }
  if (i >= argc) return usage();
  std::string cmd = argv[i++];
  std::vector<std::string> args(argv + i, argv + argc);

  auto channel = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
  auto rt = cri::RuntimeService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
  auto fail = [](const grpc::Status& s) {
    std::fprintf(stderr, "husk-cri: %s (code %d)\n", s.error_message().c_str(), static_cast<int>(s.error_code()));
    return 1;
  };

  if (cmd == "version") {
    cri::VersionRequest req;
    req.set_version("v1");
    cri::VersionResponse resp;
    if (auto s = rt->Version(&ctx, req, &resp); !s.ok()) return fail(s);
    print_json(resp);
  } else if (cmd == "runp" && (args.size() == 1 || args.size() == 2)) {
    cri::RunPodSandboxRequest req;
    if (!load_json(args[0], req.mutable_config())) return 1;
    if (args.size() == 2) req.set_runtime_handler(args[1]);
    cri::RunPodSandboxResponse resp;
    if (auto s = rt->RunPodSandbox(&ctx, req, &resp); !s.ok()) return fail(s);
    std::cout << resp.pod_sandbox_id() << "\n";
  } else if ((cmd == "stopp" || cmd == "rmp" || cmd == "inspectp") && args.size() == 1) {
    if (cmd == "stopp") {
      cri::StopPodSandboxRequest req;
      req.set_pod_sandbox_id(args[0]);
      cri::StopPodSandboxResponse resp;
      if (auto s = rt->StopPodSandbox(&ctx, req, &resp); !s.ok()) return fail(s);
    } else if (cmd == "rmp") {
      cri::RemovePodSandboxRequest req;
      req.set_pod_sandbox_id(args[0]);
      cri::RemovePodSandboxResponse resp;
      if (auto s = rt->RemovePodSandbox(&ctx, req, &resp); !s.ok()) return fail(s);
    } else {
      cri::PodSandboxStatusRequest req;
      req.set_pod_sandbox_id(args[0]);
      cri::PodSandboxStatusResponse resp;
      if (auto s = rt->PodSandboxStatus(&ctx, req, &resp); !s.ok()) return fail(s);
      print_json(resp.status());
    }
  } else if (cmd == "pods" && args.empty()) {
    cri::ListPodSandboxRequest req;
    cri::ListPodSandboxResponse resp;
    if (auto s = rt->ListPodSandbox(&ctx, req, &resp); !s.ok()) return fail(s);
    for (const auto& p : resp.items())
      std::cout << p.id() << " " << (p.state() == cri::SANDBOX_READY ? "READY" : "NOTREADY") << " " << p.metadata().name()
                << " " << p.runtime_handler() << "\n";
  } else if (cmd == "create" && args.size() == 3) {
    cri::CreateContainerRequest req;
    req.set_pod_sandbox_id(args[0]);
    if (!load_json(args[1], req.mutable_config()) || !load_json(args[2], req.mutable_sandbox_config())) return 1;
    cri::CreateContainerResponse resp;
    if (auto s = rt->CreateContainer(&ctx, req, &resp); !s.ok()) return fail(s);
    std::cout << resp.container_id() << "\n";
  } else if (cmd == "start" && args.size() == 1) {
    cri::StartContainerRequest req;
    req.set_container_id(args[0]);
    cri::StartContainerResponse resp;
    if (auto s = rt->StartContainer(&ctx, req, &resp); !s.ok()) return fail(s);
  } else if (cmd == "stop" && (args.size() == 1 || args.size() == 2)) {
    cri::StopContainerRequest req;
    req.set_container_id(args[0]);
    req.set_timeout(args.size() == 2 ? std::atoll(args[1].c_str()) : 0);
    cri::StopContainerResponse resp;
    if (auto s = rt->StopContainer(&ctx, req, &resp); !s.ok()) return fail(s);
  } else if (cmd == "rm" && args.size() == 1) {
    cri::RemoveContainerRequest req;
    req.set_container_id(args[0]);
    cri::RemoveContainerResponse resp;
    if (auto s = rt->RemoveContainer(&ctx, req, &resp); !s.ok()) return fail(s);
  } else if (cmd == "inspect" && args.size() == 1) {
    cri::ContainerStatusRequest req;
    req.set_container_id(args[0]);
    cri::ContainerStatusResponse resp;
    if (auto s = rt->ContainerStatus(&ctx, req, &resp); !s.ok()) return fail(s);
    print_json(resp.status());
  } else if (cmd == "ps" && args.size() <= 1) {
    cri::ListContainersRequest req;
    if (args.size() == 1) req.mutable_filter()->set_pod_sandbox_id(args[0]);
    cri::ListContainersResponse resp;
    if (auto s = rt->ListContainers(&ctx, req, &resp); !s.ok()) return fail(s);
    for (const auto& c : resp.containers())
      std::cout << c.id() << " " << state_name(c.state()) << " " << c.metadata().name() << " " << c.pod_sandbox_id() << "\n";
  } else if (cmd == "exec" && args.size() >= 2) {
    cri::ExecSyncRequest req;
    req.set_container_id(args[0]);
    for (size_t k = 1; k < args.size(); ++k) req.add_cmd(args[k]);
    req.set_timeout(timeout_s);
    cri::ExecSyncResponse resp;
    if (auto s = rt->ExecSync(&ctx, req, &resp); !s.ok()) return fail(s);
    std::cout << resp.stdout();
    std::cerr << resp.stderr();
    return resp.exit_code();
  } else if (cmd == "stream" || cmd == "attach") {
    bool tty = false, with_input = false;
    std::string input;
    size_t k = 0;
    for (; k < args.size() && args[k][0] == '-'; ++k) {
      if (args[k] == "-tty") tty = true;
      else if (args[k] == "-i" && k + 1 < args.size()) with_input = true, input = args[++k];
      else return usage();
    }
    if (args.size() < k + (cmd == "stream" ? 2 : 1)) return usage();
    std::string url;
    // A terminal has one output stream: no stderr.
    if (cmd == "stream") {
      cri::ExecRequest req;
      req.set_container_id(args[k]);
      for (++k; k < args.size(); ++k) req.add_cmd(args[k]);
      req.set_tty(tty), req.set_stdin(with_input), req.set_stdout(true), req.set_stderr(!tty);
      cri::ExecResponse resp;
      if (auto s = rt->Exec(&ctx, req, &resp); !s.ok()) return fail(s);
      url = resp.url();
    } else {
      cri::AttachRequest req;
      req.set_container_id(args[k]);
      req.set_tty(tty), req.set_stdin(with_input), req.set_stdout(true), req.set_stderr(!tty);
      cri::AttachResponse resp;
      if (auto s = rt->Attach(&ctx, req, &resp); !s.ok()) return fail(s);
      url = resp.url();
    }
    alarm(static_cast<unsigned>(timeout_s));  // the whole stream, as the call's deadline
    return stream_session(url, with_input ? &input : nullptr);
  } else {
    return usage();
  }
  return 0;
}
