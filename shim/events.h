// Events to containerd: each is a ForwardRequest{Envelope{timestamp, namespace, topic, event}}
// sent to containerd.services.events.ttrpc.v1.Events/Forward on $TTRPC_ADDRESS. The event's Any
// carries the bare message name as type_url ("containerd.events.TaskExit"): containerd accepts a
// "type.googleapis.com/" prefix but its subscribers then cannot decode the event.
#pragma once

#include <google/protobuf/message.h>
#include <time.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace husk::shim {

inline constexpr const char* kEventsService = "containerd.services.events.ttrpc.v1.Events";

// The topic containerd uses for an event type ("/tasks/exit" for containerd.events.TaskExit),
// or "" for a message that is not a task event.
std::string topic_for(const google::protobuf::Message& event);
// Serialized ForwardRequest for `event` in namespace `ns`.
std::string forward_request(const std::string& ns, const google::protobuf::Message& event, const timespec& at);

// Where the Task service sends its events (a Publisher; a recorder in tests).
class EventSink {
 public:
  virtual ~EventSink() = default;
  // False when the event was dropped (a bounded queue was full).
  virtual bool publish(const google::protobuf::Message& event) = 0;
  // Returns once everything published so far has been sent (or given up on).
  virtual void drain() = 0;
};

// Publishes in order from a thread of its own, so a slow containerd never blocks a Task call;
// drain() waits until everything queued so far was sent (TaskExit before Delete returns).
// The queue is bounded: events a guest can cause at will (OOM) are dropped once kMaxGuestQueued
// wait, every event once kMaxQueued wait (containerd is not reading); publish says so.
class Publisher : public EventSink {
 public:
  static constexpr size_t kMaxGuestQueued = 256;
  static constexpr size_t kMaxQueued = 4096;
  Publisher(std::string ttrpc_address, std::string ns);
  ~Publisher() override;
  bool publish(const google::protobuf::Message& event) override;
  void drain() override;

 private:
  void run();
  std::string address_, ns_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;  // serialized ForwardRequests
  size_t in_flight_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace husk::shim
