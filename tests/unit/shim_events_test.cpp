// Events as containerd receives them: Forward requests with the right topic, namespace,
// timestamp and a bare type_url, in order, through a real ttrpc server standing in for
// containerd.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <mutex>
#include <thread>

#include "github.com/containerd/containerd/api/events/task.pb.h"
#include "github.com/containerd/containerd/api/services/ttrpc/events/v1/events.pb.h"
#include "shim/events.h"
#include "shim/ttrpc/server.h"

namespace husk::shim {
namespace {

namespace ev = containerd::events;
using Forward = containerd::services::events::ttrpc::v1::ForwardRequest;

TEST(ShimEvents, EnvelopeCarriesTopicNamespaceTimeAndBareTypeUrl) {
  ev::TaskExit exit;
  exit.set_container_id("c1");
  exit.set_id("c1");
  exit.set_pid(42);
  exit.set_exit_status(137);
  timespec at{1700000000, 5};
  Forward f;
  ASSERT_TRUE(f.ParseFromString(forward_request("default", exit, at)));
  EXPECT_EQ(f.envelope().topic(), "/tasks/exit");
  EXPECT_EQ(f.envelope().namespace_(), "default");
  EXPECT_EQ(f.envelope().timestamp().seconds(), 1700000000);
  EXPECT_EQ(f.envelope().timestamp().nanos(), 5);
  EXPECT_EQ(f.envelope().event().type_url(), "containerd.events.TaskExit");
  ev::TaskExit back;
  ASSERT_TRUE(back.ParseFromString(f.envelope().event().value()));
  EXPECT_EQ(back.exit_status(), 137u);
  EXPECT_EQ(back.pid(), 42u);
}

TEST(ShimEvents, EveryTaskEventHasItsTopic) {
  EXPECT_EQ(topic_for(ev::TaskCreate()), "/tasks/create");
  EXPECT_EQ(topic_for(ev::TaskStart()), "/tasks/start");
  EXPECT_EQ(topic_for(ev::TaskDelete()), "/tasks/delete");
  EXPECT_EQ(topic_for(ev::TaskExecAdded()), "/tasks/exec-added");
  EXPECT_EQ(topic_for(ev::TaskExecStarted()), "/tasks/exec-started");
  EXPECT_EQ(topic_for(ev::TaskPaused()), "/tasks/paused");
  EXPECT_EQ(topic_for(ev::TaskResumed()), "/tasks/resumed");
  EXPECT_EQ(topic_for(ev::TaskOOM()), "/tasks/oom");
  EXPECT_EQ(topic_for(Forward()), "");
}

TEST(ShimEvents, PublisherDeliversInOrderToContainerdsForward) {
  std::string path = "/tmp/husk-events-test-" + std::to_string(getpid()) + ".sock";
  boost::asio::io_context io;
  ttrpc::Server server(io);
  std::mutex mu;
  std::vector<std::string> topics;
  server.register_method(kEventsService, "Forward", [&](const std::string& payload, const ttrpc::CallContext&) {
    Forward f;
    if (!f.ParseFromString(payload)) return ttrpc::Reply::error(ttrpc::wire(ErrorCode::kInvalidArgument), "bad");
    std::lock_guard lk(mu);
    topics.push_back(f.envelope().topic() + "@" + f.envelope().namespace_());
    return ttrpc::Reply::ok("");
  });
  ASSERT_TRUE(server.listen(path));
  server.start();
  std::thread t([&] { io.run(); });
  {
    Publisher pub(path, "k8s.io");
    pub.publish(ev::TaskCreate());
    pub.publish(ev::TaskStart());
    pub.publish(ev::TaskExit());
    pub.publish(ev::TaskDelete());
    pub.drain();
    std::lock_guard lk(mu);
    EXPECT_EQ(topics, (std::vector<std::string>{"/tasks/create@k8s.io", "/tasks/start@k8s.io", "/tasks/exit@k8s.io",
                                               "/tasks/delete@k8s.io"}));
  }
  server.stop();
  io.stop();
  t.join();
  unlink(path.c_str());
}

}  // namespace
}  // namespace husk::shim
