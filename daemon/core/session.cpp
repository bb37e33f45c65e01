#include "daemon/core/session.h"

namespace shopcast {

InboundStatus Session::append_fragment(std::string_view fragment, bool final_fragment,
                                       std::size_t limit) {
    if (inbound.size() + fragment.size() > limit) {
        inbound.clear();
        return InboundStatus::too_large;
    }
    inbound.append(fragment);
    return final_fragment ? InboundStatus::complete : InboundStatus::incomplete;
}

}  // namespace shopcast
