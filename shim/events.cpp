#include "shim/events.h"

#include <map>

#include "common/log.h"
#include "github.com/containerd/containerd/api/services/ttrpc/events/v1/events.pb.h"
#include "shim/ttrpc/client.h"

namespace husk::shim {

std::string topic_for(const google::protobuf::Message& event) {
  static const std::map<std::string, std::string> topics = {
      {"containerd.events.TaskCreate", "/tasks/create"},       {"containerd.events.TaskStart", "/tasks/start"},
      {"containerd.events.TaskExit", "/tasks/exit"},           {"containerd.events.TaskDelete", "/tasks/delete"},
      {"containerd.events.TaskExecAdded", "/tasks/exec-added"}, {"containerd.events.TaskExecStarted", "/tasks/exec-started"},
      {"containerd.events.TaskPaused", "/tasks/paused"},       {"containerd.events.TaskResumed", "/tasks/resumed"},
      {"containerd.events.TaskOOM", "/tasks/oom"},             {"containerd.events.TaskIO", "/tasks/io"},
      {"containerd.events.TaskCheckpointed", "/tasks/checkpointed"},
  };
  auto it = topics.find(event.GetDescriptor()->full_name());
  return it == topics.end() ? "" : it->second;
}

std::string forward_request(const std::string& ns, const google::protobuf::Message& event, const timespec& at) {
  containerd::services::events::ttrpc::v1::ForwardRequest req;
  auto* env = req.mutable_envelope();
  env->mutable_timestamp()->set_seconds(at.tv_sec);
  env->mutable_timestamp()->set_nanos(static_cast<int32_t>(at.tv_nsec));
  env->set_namespace_(ns);
  env->set_topic(topic_for(event));
  env->mutable_event()->set_type_url(event.GetDescriptor()->full_name());
  env->mutable_event()->set_value(event.SerializeAsString());
  return req.SerializeAsString();
}

Publisher::Publisher(std::string ttrpc_address, std::string ns) : address_(std::move(ttrpc_address)), ns_(std::move(ns)) {
  thread_ = std::thread([this] { run(); });
}

Publisher::~Publisher() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool Publisher::publish(const google::protobuf::Message& event) {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  std::string req = forward_request(ns_, event, now);
  bool from_guest = event.GetDescriptor()->full_name() == "containerd.events.TaskOOM";
  std::lock_guard lk(mu_);
  if (queue_.size() >= (from_guest ? kMaxGuestQueued : kMaxQueued)) {
    LOG_WARN_RATELIMITED("events: %zu waiting for containerd: dropping %s", queue_.size(), topic_for(event).c_str());
    return false;
  }
  queue_.push_back(std::move(req));
  cv_.notify_all();
  return true;
}

void Publisher::drain() {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, std::chrono::seconds(10), [&] { return queue_.empty() && in_flight_ == 0; });
}

void Publisher::run() {
  std::unique_ptr<ttrpc::Client> client;
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping with nothing left
    std::string req = std::move(queue_.front());
    queue_.pop_front();
    in_flight_++;
    lk.unlock();
    // One retry on a fresh connection: containerd may have restarted since the last event.
    for (int attempt = 0; attempt < 2; attempt++) {
      if (!client) {
        auto c = ttrpc::Client::connect(address_);
        if (!c) {
          LOG_WARN("events: %s", c.error().message.c_str());
          continue;
        }
        client = std::move(c.value());
      }
      auto r = client->call(kEventsService, "Forward", req, std::chrono::seconds(5));
      if (r && r->code == ttrpc::kOk) break;
      LOG_WARN("events: Forward failed: %s", r ? r->message.c_str() : r.error().message.c_str());
      client.reset();
    }
    lk.lock();
    in_flight_--;
    cv_.notify_all();
  }
}

}  // namespace husk::shim
