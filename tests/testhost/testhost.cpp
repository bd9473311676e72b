#include "tests/testhost/testhost.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace husk::testhost {

std::string Run::value(const std::string& key) const {
  std::istringstream in(output);
  std::string line, found;
  while (std::getline(in, line))
    if (line.rfind(key + "=", 0) == 0) found = line.substr(key.size() + 1);
  return found;
}

Run run(const std::string& script, const std::string& run_args) {
  char path[] = "/tmp/husk-testhost-XXXXXX";
  int fd = mkstemp(path);
  Run r;
  if (fd < 0) return r;
  close(fd);
  std::ofstream(path) << script;
  std::string cmd = "HUSK_BUILD='" HUSK_BUILD_DIR "' '" HUSK_SOURCE_DIR "/tests/testhost/run.sh' " +
                    run_args + " " + path + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p) {
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
    int st = pclose(p);
    r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  unlink(path);
  return r;
}

}  // namespace husk::testhost
