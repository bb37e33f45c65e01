// Browser actions (daemon/client_action.h, DESIGN.md "WebSocket protocol"): auth, subscribe,
// unsubscribe, resume; anything else is refused with a message for the browser.
#include "daemon/core/client_action.h"

#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace shopcast {
namespace {

struct Row {
    std::string name;
    std::string text;
    std::optional<ClientActionKind> kind;  // nullopt: refused
    std::vector<std::string> shops;
    std::string init_data;
    std::string since;
};

Row accepted(std::string name, std::string text, ClientActionKind kind) {
    return {std::move(name), std::move(text), kind, {}, {}, {}};
}

Row refused(std::string name, std::string text) {
    return {std::move(name), std::move(text), std::nullopt, {}, {}, {}};
}

void PrintTo(const Row& row, std::ostream* out) {
    *out << row.name;
}

std::vector<Row> table() {
    std::vector<Row> rows;
    const std::string init_data =
        "query_id=AAH&user=%7B%22id%22%3A42%7D&auth_date=1700000000&hash=abc123";

    Row auth = accepted("auth", R"({"action":"auth","initData":")" + init_data + "\"}",
                        ClientActionKind::auth);
    auth.init_data = init_data;
    rows.push_back(auth);
    Row auth_escaped = accepted("auth_escaped", R"({"action":"auth","initData":"a\u0026b\/c"})",
                                ClientActionKind::auth);
    auth_escaped.init_data = "a&b/c";
    rows.push_back(auth_escaped);
    rows.push_back(refused("auth_missing_init_data", R"({"action":"auth"})"));
    rows.push_back(refused("auth_init_data_number", R"({"action":"auth","initData":5})"));
    rows.push_back(refused("auth_init_data_null", R"({"action":"auth","initData":null})"));

    for (const std::string verb : {"subscribe", "unsubscribe"}) {
        const auto kind =
            verb == "subscribe" ? ClientActionKind::subscribe : ClientActionKind::unsubscribe;
        const auto with_shops = [&verb](const std::string& shops) {
            return R"({"action":")" + verb + R"(","shops":)" + shops + "}";
        };
        Row one = accepted(verb + "_one", with_shops("[123]"), kind);
        one.shops = {"123"};
        rows.push_back(one);
        Row text_id = accepted(verb + "_text_id", with_shops(R"(["shop-7"])"), kind);
        text_id.shops = {"shop-7"};
        rows.push_back(text_id);
        // IDs are compared by text: 7 and "7" are one shop.
        Row same = accepted(verb + "_number_and_text_same", with_shops(R"([7,"7",7])"), kind);
        same.shops = {"7"};
        rows.push_back(same);
        Row sorted = accepted(verb + "_sorted", with_shops(R"([3,"b",1,"a",2])"), kind);
        sorted.shops = {"1", "2", "3", "a", "b"};
        rows.push_back(sorted);
        Row max_id = accepted(verb + "_max_id", with_shops("[9007199254740991]"), kind);
        max_id.shops = {"9007199254740991"};
        rows.push_back(max_id);
        for (const auto& [name, shops] : std::vector<std::pair<std::string, std::string>>{
                 {"zero", "[0]"},
                 {"negative", "[-1]"},
                 {"fraction", "[1.5]"},
                 {"one_point_zero", "[1.0]"},
                 {"exponent", "[1e3]"},
                 {"too_big", "[9007199254740992]"},
                 {"empty_string", R"([""])"},
                 {"space", R"(["a b"])"},
                 {"too_long", "[\"" + std::string(65, 'a') + "\"]"},
                 {"null_item", "[null]"},
                 {"nested", "[[1]]"},
                 {"one_bad_among_good", R"([1,2,"x y"])"},
                 {"not_array", "123"},
                 {"string", R"("123")"},
                 {"null", "null"},
             }) {
            rows.push_back(refused(verb + "_" + name, with_shops(shops)));
        }
        rows.push_back(refused(verb + "_missing_shops", R"({"action":")" + verb + "\"}"));
    }

    Row resume =
        accepted("resume", R"({"action":"resume","since":"k3f9:17"})", ClientActionKind::resume);
    resume.since = "k3f9:17";
    rows.push_back(resume);
    rows.push_back(refused("resume_missing_since", R"({"action":"resume"})"));
    rows.push_back(refused("resume_since_number", R"({"action":"resume","since":17})"));
    rows.push_back(refused("resume_since_null", R"({"action":"resume","since":null})"));

    Row reordered = accepted("fields_in_any_order", R"({"since":"a:1","action":"resume"})",
                             ClientActionKind::resume);
    reordered.since = "a:1";
    rows.push_back(reordered);
    Row spaced = accepted("whitespace", " {\n \"action\" : \"resume\" , \"since\" : \"a:2\" }\n",
                          ClientActionKind::resume);
    spaced.since = "a:2";
    rows.push_back(spaced);

    for (const auto& [name, text] : std::vector<std::pair<std::string, std::string>>{
             {"unknown_action", R"({"action":"publish","since":"a:1"})"},
             {"action_upper_case", R"({"action":"RESUME","since":"a:1"})"},
             {"missing_action", R"({"since":"a:1"})"},
             {"action_number", R"({"action":1})"},
             {"action_null", R"({"action":null})"},
             {"empty", ""},
             {"whitespace_only", "  "},
             {"not_json", "resume"},
             {"truncated", R"({"action":"resume","since":"a:1")"},
             {"trailing_garbage", R"({"action":"resume","since":"a:1"}x)"},
             {"two_objects", R"({"action":"resume","since":"a:1"}{})"},
             {"array", R"([{"action":"resume","since":"a:1"}])"},
             {"string", R"("resume")"},
             {"number", "42"},
             {"null", "null"},
             {"invalid_utf8", "{\"action\":\"auth\",\"initData\":\"\xFF\"}"},
             {"trailing_nul", std::string(R"({"action":"resume","since":"a:1"})") + '\0'},
             {"deep", std::string(2000, '[') + std::string(2000, ']')},
             {"deep_unclosed", std::string(4096, '[')},
         }) {
        rows.push_back(refused(name, text));
    }
    return rows;
}

class ClientActionTable : public testing::TestWithParam<Row> {};

TEST_P(ClientActionTable, Parses) {
    const Row& row = GetParam();
    const ClientActionResult result = parse_client_action(row.text);
    if (!row.kind) {
        EXPECT_FALSE(result.ok) << testing::PrintToString(row.text);
        EXPECT_FALSE(result.error.empty());
        return;
    }
    ASSERT_TRUE(result.ok) << result.error;
    EXPECT_EQ(static_cast<int>(result.action.kind), static_cast<int>(*row.kind));
    EXPECT_EQ(result.action.shops, row.shops);
    EXPECT_EQ(result.action.init_data, row.init_data);
    EXPECT_EQ(result.action.since, row.since);
}

INSTANTIATE_TEST_SUITE_P(Protocol, ClientActionTable, testing::ValuesIn(table()),
                         [](const testing::TestParamInfo<Row>& row) { return row.param.name; });

// The largest message a browser may send is an ordinary message.
TEST(ClientAction, MessageOfExactlyMaxBytes) {
    const std::string head = R"({"action":"auth","initData":")";
    const std::string init_data(kMaxClientMessageBytes - head.size() - 2, 'd');
    const std::string text = head + init_data + "\"}";
    ASSERT_EQ(text.size(), kMaxClientMessageBytes);
    const ClientActionResult result = parse_client_action(text);
    ASSERT_TRUE(result.ok) << result.error;
    EXPECT_EQ(result.action.init_data, init_data);
}

TEST(ClientAction, ManyShopsInOneMessage) {
    std::string shops;
    std::vector<std::string> expected;
    for (int i = 100; i < 400; ++i) {
        shops += (shops.empty() ? "" : ",") + std::to_string(i);
        expected.push_back(std::to_string(i));
    }
    const ClientActionResult result =
        parse_client_action(R"({"action":"subscribe","shops":[)" + shops + "]}");
    ASSERT_TRUE(result.ok) << result.error;
    EXPECT_EQ(result.action.shops, expected);
}

}  // namespace
}  // namespace shopcast
