// husk-vmm's control API requests (vmm/api/server.h), without a socket.
#include "vmm/api/server.h"

#include <gtest/gtest.h>

namespace husk::api {
namespace {

struct ApiTest : ::testing::Test {
  int pauses = 0, resumes = 0;
  bool is_paused = false;
  std::string state_path, mem_path;
  Status snapshot_result;
  Handlers h{[this] { ++pauses, is_paused = true; return Status{}; },
             [this] { ++resumes, is_paused = false; return Status{}; },
             [this] { return is_paused; },
             [this](const std::string& s, const std::string& m) {
               state_path = s, mem_path = m;
               return snapshot_result;
             },
             nullptr, nullptr,
             [] { return std::string(R"({"vcpus":{"io_exits":7}})"); }};
  Response call(const char* method, const char* target, const std::string& body = "") {
    return handle(method, target, body, h);
  }
};

TEST_F(ApiTest, PauseResumeAndState) {
  EXPECT_EQ(call("GET", "/vm").body, R"({"state":"Running"})");
  auto r = call("PATCH", "/vm", R"({"state": "Paused"})");
  EXPECT_EQ(r.status, 204u);
  EXPECT_EQ(pauses, 1);
  EXPECT_EQ(call("GET", "/vm").body, R"({"state":"Paused"})");
  EXPECT_EQ(call("PATCH", "/vm", R"({"state": "Resumed"})").status, 204u);
  EXPECT_EQ(resumes, 1);
}

TEST_F(ApiTest, MetricsAreTheVmsCounters) {
  auto r = call("GET", "/metrics");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, R"({"vcpus":{"io_exits":7}})");
  EXPECT_EQ(call("PUT", "/metrics", "{}").status, 405u);
  h.metrics = nullptr;  // no VM yet
  EXPECT_EQ(call("GET", "/metrics").status, 400u);
}

TEST_F(ApiTest, SnapshotCreatePassesThePathsAndReportsFailures) {
  auto r = call("PUT", "/snapshot/create", R"({"snapshot_path": "/s", "mem_file_path": "/m", "snapshot_type": "Full"})");
  EXPECT_EQ(r.status, 204u);
  EXPECT_EQ(state_path, "/s");
  EXPECT_EQ(mem_path, "/m");
  snapshot_result = make_error("pause the VM first");
  r = call("PUT", "/snapshot/create", R"({"snapshot_path": "/s", "mem_file_path": "/m"})");
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(r.body, R"({"fault_message":"pause the VM first"})");
}

TEST_F(ApiTest, MalformedRequestsAreRefusedWithAMessage) {
  struct Case {
    const char *method, *target, *body;
    unsigned status;
  } cases[] = {
      {"PATCH", "/vm", "", 400},
      {"PATCH", "/vm", "[1,2]", 400},
      {"PATCH", "/vm", R"({"state": 1})", 400},
      {"PATCH", "/vm", R"({"state": "Frozen"})", 400},
      {"PATCH", "/vm", R"({"state": "Paused", "extra": "x"})", 400},
      {"PATCH", "/vm", "{\"state\": \"Paused\"", 400},
      {"DELETE", "/vm", "", 405},
      {"GET", "/snapshot/create", "", 405},
      {"PUT", "/snapshot/create", R"({"snapshot_path": "/s"})", 400},
      {"PUT", "/snapshot/create", R"({"snapshot_path": "", "mem_file_path": "/m"})", 400},
      {"PUT", "/snapshot/create", R"({"snapshot_path": "/s", "mem_file_path": "/s"})", 400},
      {"PUT", "/snapshot/create", R"({"snapshot_path": "/s", "mem_file_path": "/m", "snapshot_type": "Diff"})", 400},
      {"PUT", "/snapshot/create", R"({"snapshot_path": "/s", "mem_file_path": "/m", "x": "y"})", 400},
      {"PUT", "/snapshot/load", R"({"snapshot_path": "/s", "mem_file_path": "/m"})", 400},
      {"GET", "/machine-config", "", 404},
  };
  for (const auto& c : cases) {
    auto r = call(c.method, c.target, c.body);
    EXPECT_EQ(r.status, c.status) << c.method << " " << c.target << " " << c.body;
    EXPECT_NE(r.body.find("fault_message"), std::string::npos) << c.body;
  }
  EXPECT_EQ(pauses, 0);
  EXPECT_TRUE(state_path.empty());
}

// husk-vmm --api alone: nothing but a load until a snapshot is loaded (Firecracker's shapes).
TEST_F(ApiTest, SnapshotLoadIsAllAVmmWithoutAVmTakes) {
  std::string loaded_state, loaded_mem;
  bool resumed = false;
  int loaded = 0;
  Status load_result;
  h.snapshot_load = [&](const std::string& st, const std::string& m, bool r) {
    loaded_state = st, loaded_mem = m, resumed = r;
    return load_result;
  };
  h.loaded = [&] { ++loaded; };
  EXPECT_EQ(call("GET", "/vm").body, R"({"state":"Not started"})");
  EXPECT_EQ(call("PATCH", "/vm", R"({"state": "Paused"})").status, 400u);
  EXPECT_EQ(call("PUT", "/snapshot/create", R"({"snapshot_path": "/s", "mem_file_path": "/m"})").status, 400u);
  EXPECT_EQ(pauses, 0);
  EXPECT_TRUE(state_path.empty());

  auto r = call("PUT", "/snapshot/load",
                R"({"snapshot_path": "/s", "mem_backend": {"backend_path": "/m", "backend_type": "File"}, "enable_diff_snapshots": false, "resume_vm": true})");
  EXPECT_EQ(r.status, 204u) << r.body;
  EXPECT_EQ(loaded_state, "/s");
  EXPECT_EQ(loaded_mem, "/m");
  EXPECT_TRUE(resumed);
  ASSERT_TRUE(r.then);  // the VMM switches to the loaded VM once this answer is out
  r.then();
  EXPECT_EQ(loaded, 1);

  r = call("PUT", "/snapshot/load", R"({"snapshot_path": "/s2", "mem_file_path": "fd=5"})");
  EXPECT_EQ(r.status, 204u) << r.body;
  EXPECT_EQ(loaded_mem, "fd=5");
  EXPECT_FALSE(resumed);  // Firecracker's default: loaded paused

  load_result = make_error("snapshot device mismatch: ...");
  r = call("PUT", "/snapshot/load", R"({"snapshot_path": "/s", "mem_file_path": "/m"})");
  EXPECT_EQ(r.status, 400u);
  EXPECT_NE(r.body.find("snapshot device mismatch"), std::string::npos) << r.body;
  EXPECT_FALSE(r.then);

  loaded_state.clear();
  for (const char* bad : {
           R"({"mem_file_path": "/m"})",
           R"({"snapshot_path": "/s"})",
           R"({"snapshot_path": "", "mem_file_path": "/m"})",
           R"({"snapshot_path": "/s", "mem_file_path": "/s"})",
           R"({"snapshot_path": "/s", "mem_file_path": "/m", "mem_backend": {"backend_path": "/m", "backend_type": "File"}})",
           R"({"snapshot_path": "/s", "mem_backend": {"backend_path": "/m", "backend_type": "Uffd"}})",
           R"({"snapshot_path": "/s", "mem_backend": {"backend_path": "/m"}})",
           R"({"snapshot_path": "/s", "mem_backend": {"backend_type": "File"}})",
           R"({"snapshot_path": "/s", "mem_backend": {"backend_path": "/m", "backend_type": "File", "x": 1}})",
           R"({"snapshot_path": "/s", "mem_backend": "/m"})",
           R"({"snapshot_path": "/s", "mem_file_path": "/m", "enable_diff_snapshots": true})",
           R"({"snapshot_path": "/s", "mem_file_path": "/m", "resume_vm": "yes"})",
           R"({"snapshot_path": "/s", "mem_file_path": "/m", "network_overrides": []})",
           R"({"snapshot_path": 7, "mem_file_path": "/m"})",
           "[]",
           "{",
       }) {
    r = call("PUT", "/snapshot/load", bad);
    EXPECT_EQ(r.status, 400u) << bad;
    EXPECT_NE(r.body.find("fault_message"), std::string::npos) << bad;
  }
  EXPECT_TRUE(loaded_state.empty());
  EXPECT_EQ(call("GET", "/snapshot/load").status, 405u);
}

}  // namespace
}  // namespace husk::api
