// A client for husk-vmm's control API (vmm/api/server.h): one HTTP/1.1 request per call over
// the unix socket the shim created and handed to husk-vmm. The shim uses it to pause a template
// VM and write its snapshot.
#pragma once

#include <string>

#include "common/result.h"

namespace husk::shim {

// Sends METHOD TARGET with a JSON body to the API socket at `path`; an error unless husk-vmm
// answered 2xx (its fault_message, otherwise).
Status vmm_api_call(const std::string& path, const std::string& method, const std::string& target,
                    const std::string& json_body, unsigned timeout_ms);

}  // namespace husk::shim
