// Publish-event validation against DESIGN.md ("Publish API" and "Precise rules").
//
// Depth, as tested here: the top-level value has depth 1 and every array or object inside a
// container is one deeper; scalars add nothing. So `{"x":[]}` is 2 deep, and a body is
// accepted when no container is deeper than kMaxJsonDepth (32).
#include "common/event.h"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shopcast {
namespace {

enum class Expect { ok, invalid_json, invalid_event };

// One row of the validation table.
struct Case {
    std::string name;
    std::string body;
    Expect expect = Expect::ok;
    std::string mention;  // invalid_event: text the message must contain (the field's name)
    std::optional<std::string> type;
    std::optional<std::string> shop_id;
    std::optional<std::string> user_id;
    std::vector<std::string> require_user_for;
};

Case accept(std::string name, std::string body) {
    Case c;
    c.name = std::move(name);
    c.body = std::move(body);
    return c;
}

Case refuse(std::string name, std::string body, std::string field) {
    Case c;
    c.name = std::move(name);
    c.body = std::move(body);
    c.expect = Expect::invalid_event;
    c.mention = std::move(field);
    return c;
}

Case malformed(std::string name, std::string body) {
    Case c;
    c.name = std::move(name);
    c.body = std::move(body);
    c.expect = Expect::invalid_json;
    return c;
}

std::string repeat(std::string_view unit, std::size_t count) {
    std::string out;
    out.reserve(unit.size() * count);
    for (std::size_t i = 0; i < count; ++i) out += unit;
    return out;
}

std::string json_string(std::string_view text) {
    return "\"" + std::string(text) + "\"";
}

std::string trim_json_whitespace(std::string_view text) {
    constexpr std::string_view kWhitespace = " \t\r\n";
    const auto first = text.find_first_not_of(kWhitespace);
    if (first == std::string_view::npos) return {};
    const auto last = text.find_last_not_of(kWhitespace);
    return std::string(text.substr(first, last - first + 1));
}

// A valid product_added body; `extra` (without leading comma) is appended as more fields.
std::string product_added(std::string_view extra = {}) {
    std::string body = R"({"type":"product_added","shopId":1,"productId":2)";
    if (!extra.empty()) body += "," + std::string(extra);
    return body + "}";
}

struct TypeSpec {
    std::string type;
    std::vector<std::string> required;
};

const std::vector<TypeSpec>& event_types() {
    static const std::vector<TypeSpec> types = {
        {"product_added", {"shopId", "productId"}},
        {"product_updated", {"shopId", "productId"}},
        {"product_deleted", {"shopId", "productId"}},
        {"order_status", {"orderId", "status"}},
        {"new_subscriber", {"shopId"}},
        {"shop_updated", {"shopId"}},
    };
    return types;
}

std::string sample_value(const std::string& field) {
    if (field == "shopId") return "1";
    if (field == "productId") return "2";
    if (field == "orderId") return "3";
    return R"("paid")";  // status
}

// `{"type":T,<required fields, `skip` left out or replaced by `replacement`>,<extra>}`
std::string body_for(const TypeSpec& spec, const std::string& skip = {},
                     const std::optional<std::string>& replacement = std::nullopt,
                     std::string_view extra = {}) {
    std::string body = R"({"type":)" + json_string(spec.type);
    for (const auto& field : spec.required) {
        if (field == skip) {
            if (replacement) body += "," + json_string(field) + ":" + *replacement;
            continue;
        }
        body += "," + json_string(field) + ":" + sample_value(field);
    }
    if (!extra.empty()) body += "," + std::string(extra);
    return body + "}";
}

void add_type_cases(std::vector<Case>& cases) {
    for (const auto& spec : event_types()) {
        const bool has_shop = spec.required.front() == "shopId";

        Case minimal = accept(spec.type + "_minimal", body_for(spec));
        minimal.type = spec.type;
        minimal.shop_id = has_shop ? "1" : "";
        minimal.user_id = "";
        cases.push_back(minimal);

        Case with_user =
            accept(spec.type + "_with_user", body_for(spec, {}, std::nullopt, R"("userId":42)"));
        with_user.type = spec.type;
        with_user.shop_id = has_shop ? "1" : "";
        with_user.user_id = "42";
        cases.push_back(with_user);

        for (const auto& field : spec.required) {
            cases.push_back(refuse(spec.type + "_missing_" + field, body_for(spec, field), field));
            cases.push_back(
                refuse(spec.type + "_null_" + field, body_for(spec, field, "null"), field));
        }
        cases.push_back(refuse(spec.type + "_sets_id",
                               body_for(spec, {}, std::nullopt, R"("id":"k3f9:17")"), "id"));
    }
}

// Where each ID field sits in an otherwise valid body ("@" is replaced by the value).
struct IdField {
    std::string name;
    std::string body;
};

const std::vector<IdField>& id_fields() {
    static const std::vector<IdField> fields = {
        {"shopId", R"({"type":"product_added","shopId":@,"productId":2})"},
        {"productId", R"({"type":"product_added","shopId":1,"productId":@})"},
        {"orderId", R"({"type":"order_status","orderId":@,"status":"paid"})"},
        {"userId", R"({"type":"order_status","orderId":1,"status":"paid","userId":@})"},
    };
    return fields;
}

std::string with_value(const std::string& body, const std::string& value) {
    std::string out = body;
    out.replace(out.find('@'), 1, value);
    return out;
}

const std::string kAllIdChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";

void add_id_cases(std::vector<Case>& cases) {
    // {case name, JSON literal, the ID's text}
    const std::vector<std::array<std::string, 3>> good = {
        {"int_1", "1", "1"},
        {"int_2p53_minus_1", "9007199254740991", "9007199254740991"},
        {"int_7", "7", "7"},
        {"string_7", R"("7")", "7"},
        {"string_1_char", R"("a")", "a"},
        {"string_64_chars", json_string(kAllIdChars), kAllIdChars},
        {"string_dash_underscore", R"("-_")", "-_"},
        {"string_leading_zero", R"("007")", "007"},
    };
    const std::vector<std::array<std::string, 2>> bad = {
        {"int_0", "0"},
        {"int_minus_1", "-1"},
        {"minus_0", "-0"},
        {"float_1_0", "1.0"},
        {"exp_1e3", "1e3"},
        {"exp_1E3", "1E3"},
        {"exp_1e0", "1e0"},
        {"float_1_5", "1.5"},
        {"int_2p53", "9007199254740992"},
        {"int_2p53_plus_1", "9007199254740993"},
        {"int_2p64", "18446744073709551616"},
        {"int_2p64_minus_1", "18446744073709551615"},
        {"int_huge", "123456789012345678901234567890"},
        {"zero_exponent", "0e96"},
        {"true", "true"},
        {"false", "false"},
        {"null", "null"},
        {"array", "[1]"},
        {"object", R"({"id":1})"},
        {"string_empty", R"("")"},
        {"string_65_chars", json_string(kAllIdChars + "x")},
        {"string_space", R"("a b")"},
        {"string_leading_space", R"(" 7")"},
        {"string_dot", R"("a.b")"},
        {"string_slash", R"("a/b")"},
        {"string_plus", R"("a+b")"},
        {"string_colon", R"("a:b")"},
        {"string_quote", R"("a\"b")"},
        {"string_nul", R"("a\u0000b")"},
        {"string_newline", R"("a\nb")"},
        {"string_latin_accent", "\"caf\xC3\xA9\""},
        {"string_cyrillic", "\"\xD0\xB0\""},
        {"string_fullwidth_digit", "\"\xEF\xBC\x91\""},
    };
    for (const auto& field : id_fields()) {
        for (const auto& [name, literal, text] : good) {
            Case c = accept(field.name + "_" + name, with_value(field.body, literal));
            if (field.name == "shopId") c.shop_id = text;
            if (field.name == "userId") c.user_id = text;
            cases.push_back(c);
        }
        for (const auto& [name, literal] : bad) {
            cases.push_back(
                refuse(field.name + "_" + name, with_value(field.body, literal), field.name));
        }
    }
}

void add_status_cases(std::vector<Case>& cases) {
    const std::string body = R"({"type":"order_status","orderId":3,"status":@})";
    const std::string cyrillic_a = "\xD0\xB0";           // U+0430, 2 bytes
    const std::string emoji = "\xF0\x9F\x98\x80";        // U+1F600, 4 bytes
    const std::string escaped_cyrillic = "\\u0430";      // one code point once unescaped
    const std::string escaped_emoji = "\\uD83D\\uDE00";  // one code point (surrogate pair)
    const std::vector<std::array<std::string, 2>> good = {
        {"one_char", "a"},
        {"ascii_32", repeat("x", 32)},
        {"cyrillic_32", repeat(cyrillic_a, 32)},
        {"emoji_32", repeat(emoji, 32)},
        {"escaped_cyrillic_32", repeat(escaped_cyrillic, 32)},
        {"escaped_emoji_32", repeat(escaped_emoji, 32)},
        {"ascii_31_plus_emoji", repeat("x", 31) + emoji},
        {"with_space", "in transit"},
    };
    const std::vector<std::array<std::string, 2>> bad = {
        {"empty", ""},
        {"ascii_33", repeat("x", 33)},
        {"cyrillic_33", repeat(cyrillic_a, 33)},
        {"emoji_33", repeat(emoji, 33)},
        {"escaped_cyrillic_33", repeat(escaped_cyrillic, 33)},
        {"escaped_emoji_33", repeat(escaped_emoji, 33)},
    };
    for (const auto& [name, text] : good) {
        cases.push_back(accept("status_" + name, with_value(body, json_string(text))));
    }
    for (const auto& [name, text] : bad) {
        cases.push_back(refuse("status_" + name, with_value(body, json_string(text)), "status"));
    }
    for (const auto& [name, literal] : std::vector<std::array<std::string, 2>>{
             {"number", "5"}, {"true", "true"}, {"array", R"(["paid"])"}, {"object", "{}"}}) {
        cases.push_back(refuse("status_" + name, with_value(body, literal), "status"));
    }
}

void add_reserved_and_type_cases(std::vector<Case>& cases) {
    cases.push_back(refuse("id_number", product_added(R"("id":1)"), "id"));
    cases.push_back(refuse("id_null", product_added(R"("id":null)"), "id"));
    cases.push_back(
        refuse("id_first", R"({"id":"x","type":"product_added","shopId":1,"productId":2})", "id"));
    cases.push_back(refuse("id_escaped_key", product_added(R"("\u0069d":1)"), "id"));
    cases.push_back(accept("id_nested_is_pass_through", product_added(R"("x":{"id":1})")));
    cases.push_back(accept("id_other_case_is_pass_through", product_added(R"("ID":1,"Id":2)")));

    cases.push_back(refuse("type_missing", R"({"shopId":1,"productId":2})", "type"));
    const std::vector<std::array<std::string, 2>> bad_types = {
        {"number", "1"},
        {"null", "null"},
        {"array", R"(["product_added"])"},
        {"object", R"({"type":"product_added"})"},
        {"unknown", R"("product_created")"},
        {"empty", R"("")"},
        {"upper_case", R"("PRODUCT_ADDED")"},
        {"trailing_space", R"("product_added ")"},
        {"control_hello", R"("hello")"},
        {"control_resync", R"("resync")"},
        {"control_auth_ok", R"("auth_ok")"},
        {"control_error", R"("error")"},
        {"control_subscribed", R"("subscribed")"},
    };
    for (const auto& [name, literal] : bad_types) {
        cases.push_back(refuse("type_" + name,
                               R"({"type":)" + literal + R"(,"shopId":1,"productId":2})", "type"));
    }
    Case escaped_value =
        accept("type_escaped_value", R"({"type":"product\u005fadded","shopId":1,"productId":2})");
    escaped_value.type = "product_added";
    cases.push_back(escaped_value);
    Case escaped_key =
        accept("type_escaped_key", R"({"typ\u0065":"product_added","shopId":1,"productId":2})");
    escaped_key.type = "product_added";
    cases.push_back(escaped_key);

    Case not_object;
    for (const auto& [name, body] :
         std::vector<std::array<std::string, 2>>{{"array", "[]"},
                                                 {"array_of_event", "[" + product_added() + "]"},
                                                 {"string", R"("product_added")"},
                                                 {"number", "42"},
                                                 {"true", "true"},
                                                 {"null", "null"}}) {
        Case c = refuse("not_object_" + name, body, "");
        cases.push_back(c);
    }
}

void add_syntax_cases(std::vector<Case>& cases) {
    const std::string valid = product_added();
    const std::vector<std::array<std::string, 2>> bad = {
        {"empty", ""},
        {"space", " "},
        {"whitespace_only", " \t\r\n"},
        {"open_brace", "{"},
        {"truncated", R"({"type":"product_added","shopId":1,"productId":2)"},
        {"truncated_in_string", R"({"type":"product_add)"},
        {"trailing_garbage", valid + "x"},
        {"trailing_garbage_after_space", valid + " x"},
        {"trailing_comma_after_object", valid + ","},
        {"two_objects", valid + valid},
        {"two_objects_spaced", valid + "\n" + valid},
        {"trailing_nul", valid + std::string(1, '\0')},
        {"trailing_nul_garbage", valid + std::string(1, '\0') + "garbage"},
        {"leading_nul", std::string(1, '\0') + valid},
        {"trailing_comma_in_object", R"({"type":"product_added","shopId":1,"productId":2,})"},
        {"single_quotes", R"({'type':'product_added','shopId':1,'productId':2})"},
        {"unquoted_key", R"({type:"product_added","shopId":1,"productId":2})"},
        {"comment", R"({"type":"product_added",/*c*/"shopId":1,"productId":2})"},
        {"nan", product_added(R"("x":NaN)")},
        {"infinity", product_added(R"("x":Infinity)")},
        {"leading_zero", R"({"type":"product_added","shopId":01,"productId":2})"},
        {"plus_sign", R"({"type":"product_added","shopId":+1,"productId":2})"},
        {"bare_fraction", R"({"type":"product_added","shopId":.5,"productId":2})"},
        {"raw_newline_in_string", product_added("\"x\":\"a\nb\"")},
        {"raw_tab_in_string", product_added("\"x\":\"a\tb\"")},
        {"bad_escape", product_added(R"("x":"\x41")")},
        {"short_unicode_escape", product_added(R"("x":"\u12")")},
        {"missing_colon", R"({"type" "product_added","shopId":1,"productId":2})"},
        {"unclosed_array", product_added(R"("x":[1,2)")},
        // Invalid UTF-8, inside strings and outside them.
        {"utf8_ff_in_string", product_added("\"x\":\"\xFF\"")},
        {"utf8_latin1_in_status",
         "{\"type\":\"order_status\",\"orderId\":3,\"status\":\"caf\xE9\"}"},
        {"utf8_truncated_sequence", product_added("\"x\":\"\xE2\x82\"")},
        {"utf8_lone_continuation", product_added("\"x\":\"\x80\"")},
        {"utf8_overlong_slash", product_added("\"x\":\"\xC0\xAF\"")},
        {"utf8_overlong_nul", product_added("\"x\":\"\xC0\x80\"")},
        {"utf8_encoded_surrogate", product_added("\"x\":\"\xED\xA0\x80\"")},
        {"utf8_above_10ffff", product_added("\"x\":\"\xF4\x90\x80\x80\"")},
        {"utf8_in_key", product_added("\"\xC3\":1")},
        {"utf8_bare_before", "\xFF" + valid},
        {"utf8_bare_after", valid + "\xFF"},
        {"utf8_bare_only", "\xFF"},
        {"utf8_bare_as_value", product_added("\"x\":\xC3\xA9")},
    };
    for (const auto& [name, body] : bad) cases.push_back(malformed("syntax_" + name, body));

    // Syntax is judged before any event rule: each of these also breaks an event rule.
    cases.push_back(malformed("syntax_before_duplicate", R"({"type":"product_added","type":1)"));
    cases.push_back(malformed("syntax_before_reserved_id", product_added(R"("id":1)") + "x"));
    cases.push_back(malformed("syntax_before_unknown_type", "{\"type\":\"nope\",\"x\":\"\xFF\"}"));
    cases.push_back(malformed("syntax_before_not_object", "[1,]"));
}

// `count` nested arrays around a scalar: "[[[0]]]" for 3.
std::string nested_arrays(std::size_t count) {
    return repeat("[", count) + "0" + repeat("]", count);
}

// `count` nested objects: {"a":{"a":{}}} for 3.
std::string nested_objects(std::size_t count) {
    return repeat(R"({"a":)", count - 1) + "{}" + repeat("}", count - 1);
}

void add_depth_cases(std::vector<Case>& cases) {
    // The event object is depth 1, so a field value may nest kMaxJsonDepth - 1 containers.
    cases.push_back(accept("depth_32_arrays", product_added(R"("x":)" + nested_arrays(31))));
    cases.push_back(malformed("depth_33_arrays", product_added(R"("x":)" + nested_arrays(32))));
    cases.push_back(accept("depth_32_objects", product_added(R"("x":)" + nested_objects(31))));
    cases.push_back(malformed("depth_33_objects", product_added(R"("x":)" + nested_objects(32))));
    cases.push_back(accept("depth_32_empty_array",
                           product_added(R"("x":)" + repeat("[", 31) + repeat("]", 31))));
    cases.push_back(malformed("depth_33_empty_array",
                              product_added(R"("x":)" + repeat("[", 32) + repeat("]", 32))));
    // Depth counts nesting, not containers in sequence, nor brackets inside strings.
    cases.push_back(accept("depth_siblings", product_added(R"("x":)" + nested_arrays(31) +
                                                           R"(,"y":)" + nested_objects(31))));
    cases.push_back(
        accept("depth_brackets_in_string", product_added(R"("x":")" + repeat("[{", 100) + "\"")));
    // A top-level array is not an event, but its depth is still a syntax matter.
    cases.push_back(refuse("depth_32_top_level_array", nested_arrays(32), ""));
    cases.push_back(malformed("depth_33_top_level_array", nested_arrays(33)));
}

void add_duplicate_cases(std::vector<Case>& cases) {
    cases.push_back(refuse("duplicate_shop_id",
                           R"({"type":"product_added","shopId":1,"productId":2,"shopId":1})",
                           "shopId"));
    cases.push_back(refuse("duplicate_shop_id_differing",
                           R"({"type":"product_added","shopId":1,"productId":2,"shopId":9})",
                           "shopId"));
    cases.push_back(refuse(
        "duplicate_type",
        R"({"type":"product_added","shopId":1,"productId":2,"type":"shop_updated"})", "type"));
    cases.push_back(refuse("duplicate_pass_through", product_added(R"("x":1,"x":1)"), "x"));
    cases.push_back(
        refuse("duplicate_user_id", product_added(R"("userId":5,"userId":6)"), "userId"));
    cases.push_back(refuse("duplicate_by_escape",
                           R"({"type":"product_added","shopId":1,"productId":2,"shop\u0049d":1})",
                           "shopId"));
    cases.push_back(refuse("duplicate_nested_object", product_added(R"("x":{"a":1,"a":2})"), ""));
    cases.push_back(
        refuse("duplicate_nested_in_array", product_added(R"("x":[{"b":1},{"a":1,"a":1}])"), ""));
    cases.push_back(
        refuse("duplicate_deep", product_added(R"("x":{"y":{"z":[[{"k":1,"k":1}]]}})"), ""));
    cases.push_back(accept("same_key_in_sibling_objects",
                           product_added(R"("x":{"a":1},"y":{"a":1},"z":[{"a":1},{"a":2}])")));
    cases.push_back(accept("keys_differing_in_case", product_added(R"("x":1,"X":1)")));
}

void add_pass_through_cases(std::vector<Case>& cases) {
    cases.push_back(
        accept("pass_through_all_kinds",
               product_added(R"("name":"Widget","price":9.99,"tags":["a","b"],)"
                             R"("meta":{"k":null,"n":[1,2.5e10,-3]},"flag":true,)"
                             R"("off":false,"big":1E300,"neg":-5,"zero":0,"empty":{})")));
    cases.push_back(accept("pass_through_unicode",
                           product_added("\"name\":\"\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1"
                                         "\x82 \xF0\x9F\x98\x80\"")));
    cases.push_back(accept("pass_through_escapes",
                           product_added(R"("name":"a\"b\\c\/d\u00e9\n\t\ud83d\ude00")")));
    // Numbers RapidJSON's full-precision path mishandles (clz of zero in StrtodDiyFp).
    cases.push_back(accept("pass_through_zero_with_exponent", product_added(R"("x":0e96)")));
    cases.push_back(accept("pass_through_zero_fraction_exponent",
                           product_added(R"("x":0.000e-400,"y":-0E+96)")));
    // Beyond a double's range: RapidJSON 1.1.0 refuses the literal, and a browser's JSON.parse
    // could not keep its value anyway (Infinity), so the contract refuses it as invalid_json.
    cases.push_back(malformed("pass_through_huge_exponent", product_added(R"("x":1e400)")));
    cases.push_back(malformed("shopId_huge_exponent",
                              R"({"type":"product_added","shopId":1e400,"productId":2})"));
    cases.push_back(accept("pass_through_long_mantissa",
                           product_added(R"("x":123456789012345678901234567890.5e-3)")));
    cases.push_back(
        accept("inner_whitespace_kept",
               "{ \"type\" : \"product_added\" ,\n\t\"shopId\" : 1 , \"productId\":2 }"));
    Case surrounded =
        accept("surrounding_whitespace_trimmed", " \t\r\n" + product_added() + "\n\r\t ");
    cases.push_back(surrounded);
    cases.push_back(accept("leading_newline", "\n" + product_added()));
    cases.push_back(accept("trailing_newline", product_added() + "\n"));
    cases.push_back(accept("fields_in_any_order",
                           R"({"productId":2,"x":1,"shopId":1,"type":"product_added"})"));
}

void add_policy_cases(std::vector<Case>& cases) {
    const std::string order = R"({"type":"order_status","orderId":3,"status":"paid"})";
    const std::string order_for_user =
        R"({"type":"order_status","orderId":3,"status":"paid","userId":77})";

    Case public_order = accept("order_public", order);
    public_order.shop_id = "";
    public_order.user_id = "";
    cases.push_back(public_order);

    Case private_order = accept("order_private", order_for_user);
    private_order.user_id = "77";
    cases.push_back(private_order);

    Case required = refuse("policy_order_without_user", order, "userId");
    required.require_user_for = {"order_status"};
    cases.push_back(required);

    Case required_present = accept("policy_order_with_user", order_for_user);
    required_present.require_user_for = {"order_status"};
    required_present.user_id = "77";
    cases.push_back(required_present);

    Case other_type = accept("policy_other_type_unaffected", product_added());
    other_type.require_user_for = {"order_status"};
    cases.push_back(other_type);

    Case two_types = refuse("policy_product_without_user", product_added(), "userId");
    two_types.require_user_for = {"order_status", "product_added"};
    cases.push_back(two_types);

    Case two_types_present = accept("policy_product_with_user", product_added(R"("userId":"u-9")"));
    two_types_present.require_user_for = {"order_status", "product_added"};
    two_types_present.user_id = "u-9";
    cases.push_back(two_types_present);

    Case bad_user =
        refuse("policy_invalid_user",
               R"({"type":"order_status","orderId":3,"status":"paid","userId":0})", "userId");
    bad_user.require_user_for = {"order_status"};
    cases.push_back(bad_user);
}

std::vector<Case> all_cases() {
    std::vector<Case> cases;
    add_type_cases(cases);
    add_id_cases(cases);
    add_status_cases(cases);
    add_reserved_and_type_cases(cases);
    add_syntax_cases(cases);
    add_depth_cases(cases);
    add_duplicate_cases(cases);
    add_pass_through_cases(cases);
    add_policy_cases(cases);
    return cases;
}

// Names the row in gtest's output instead of dumping its bytes.
void PrintTo(const Case& c, std::ostream* out) {
    *out << c.name;
}

const char* expect_name(Expect expect) {
    switch (expect) {
        case Expect::ok:
            return "ok";
        case Expect::invalid_json:
            return "invalid_json";
        case Expect::invalid_event:
            return "invalid_event";
    }
    return "?";
}

Expect outcome(const ValidationResult& result) {
    if (result.ok) return Expect::ok;
    return result.error == EventError::invalid_json ? Expect::invalid_json : Expect::invalid_event;
}

class ValidationTable : public testing::TestWithParam<Case> {};

TEST_P(ValidationTable, FollowsDesign) {
    const Case& c = GetParam();
    ValidationPolicy policy;
    policy.require_user_for = c.require_user_for;
    const ValidationResult result = validate_event(c.body, policy);

    ASSERT_EQ(expect_name(outcome(result)), std::string(expect_name(c.expect)))
        << "body: " << testing::PrintToString(c.body) << "\nmessage: " << result.message
        << "\njson: " << testing::PrintToString(result.event.json);
    if (c.expect == Expect::ok) {
        EXPECT_EQ(result.event.json, trim_json_whitespace(c.body));
        EXPECT_TRUE(is_known_event_type(result.event.type)) << result.event.type;
        if (c.type) {
            EXPECT_EQ(result.event.type, *c.type);
        }
        if (c.shop_id) {
            EXPECT_EQ(result.event.shop_id, *c.shop_id);
        }
        if (c.user_id) {
            EXPECT_EQ(result.event.user_id, *c.user_id);
        }
        return;
    }
    EXPECT_FALSE(result.message.empty());
    if (!c.mention.empty()) {
        EXPECT_NE(result.message.find(c.mention), std::string::npos)
            << "message \"" << result.message << "\" should name " << c.mention;
    }
}

INSTANTIATE_TEST_SUITE_P(Design, ValidationTable, testing::ValuesIn(all_cases()),
                         [](const testing::TestParamInfo<Case>& row) { return row.param.name; });

TEST(Validation, TypeOfEveryTableRowIsReported) {
    for (const auto& spec : event_types()) {
        const auto result = validate_event(body_for(spec), {});
        ASSERT_TRUE(result.ok) << spec.type << ": " << result.message;
        EXPECT_EQ(result.event.type, spec.type);
    }
}

TEST(IdText, FromString) {
    const std::vector<std::pair<std::string, bool>> table = {
        {"7", true},
        {"a", true},
        {"007", true},
        {"-_", true},
        {kAllIdChars, true},
        {"", false},
        {kAllIdChars + "x", false},
        {"a b", false},
        {"a.b", false},
        {"a:b", false},
        {"\xD0\xB0", false},
        {std::string("a\0b", 3), false},
        {" 7", false},
        {"7\n", false},
    };
    for (const auto& [text, valid] : table) {
        const auto id = id_from_string(text);
        EXPECT_EQ(id.has_value(), valid) << '"' << text << '"';
        if (id && valid) {
            EXPECT_EQ(*id, text);
        }
    }
}

TEST(IdText, FromInteger) {
    constexpr std::uint64_t kMaxId = (std::uint64_t{1} << 53) - 1;
    EXPECT_EQ(id_from_integer(1), "1");
    EXPECT_EQ(id_from_integer(7), "7");
    EXPECT_EQ(id_from_integer(kMaxId), "9007199254740991");
    EXPECT_EQ(id_from_integer(0), std::nullopt);
    EXPECT_EQ(id_from_integer(kMaxId + 1), std::nullopt);
    EXPECT_EQ(id_from_integer(UINT64_MAX), std::nullopt);
    // The same ID from either form names the same shop.
    EXPECT_EQ(id_from_integer(7), id_from_string("7"));
}

TEST(Validation, KnownEventTypes) {
    for (const auto& spec : event_types()) EXPECT_TRUE(is_known_event_type(spec.type)) << spec.type;
    for (std::string_view type : {"", "hello", "resync", "auth_ok", "error", "subscribed",
                                  "PRODUCT_ADDED", "product_added ", "product", "order"}) {
        EXPECT_FALSE(is_known_event_type(type)) << type;
    }
}

// Exactly kMaxEventBytes of valid JSON is an ordinary event.
TEST(Validation, BodyOfExactlyMaxBytesAccepted) {
    std::string body = product_added(R"("pad":"")");
    ASSERT_LT(body.size(), kMaxEventBytes);
    body.insert(body.size() - 2, kMaxEventBytes - body.size(), 'p');
    ASSERT_EQ(body.size(), kMaxEventBytes);
    const auto result = validate_event(body, {});
    ASSERT_TRUE(result.ok) << result.message;
    EXPECT_EQ(result.event.json, body);
}

TEST(Validation, BodyOfExactlyMaxBytesWithManyFieldsAccepted) {
    std::string body = R"({"type":"product_added","shopId":1,"productId":2)";
    for (int i = 0; body.size() < kMaxEventBytes - 32; ++i) {
        body += ",\"f" + std::to_string(i) + "\":" + std::to_string(i);
    }
    body += "}";
    body.insert(0, kMaxEventBytes - body.size(), ' ');
    ASSERT_EQ(body.size(), kMaxEventBytes);
    const auto result = validate_event(body, {});
    ASSERT_TRUE(result.ok) << result.message;
    EXPECT_EQ(result.event.json, trim_json_whitespace(body));
}

// Deep nesting must be refused by a depth limit, not by exhausting the stack.
TEST(Validation, DeepNestingRefusedWithoutCrash) {
    const std::vector<std::pair<std::string, std::string>> bodies = {
        {"64 KiB of [", std::string(kMaxEventBytes, '[')},
        {"64 KiB of {", std::string(kMaxEventBytes, '{')},
        {"64 KiB of {\"a\":", repeat(R"({"a":)", kMaxEventBytes / 5)},
        {"64 KiB of [{\"a\":", repeat(R"([{"a":)", kMaxEventBytes / 6)},
        {"balanced 32 Ki deep", repeat("[", kMaxEventBytes / 2) + repeat("]", kMaxEventBytes / 2)},
        {"object then deep", product_added(R"("x":)" + std::string(kMaxEventBytes - 64, '['))},
    };
    for (const auto& [name, body] : bodies) {
        const auto result = validate_event(body, {});
        EXPECT_FALSE(result.ok) << name;
        EXPECT_EQ(result.error, EventError::invalid_json) << name;
    }
    // Beyond the size limit too (100,000 deep): refused, whatever the reason given.
    EXPECT_FALSE(validate_event(std::string(100'000, '['), {}).ok);
}

// The body is a view into a larger buffer: nothing beyond its end may be read.
TEST(Validation, BodyIsNotNulTerminated) {
    const std::string valid = product_added();
    const std::string buffer = valid + "}garbage";
    // Every proper prefix is a truncated object, even when the byte after it would complete it.
    for (std::size_t length = 0; length < valid.size(); ++length) {
        const auto result = validate_event(std::string_view(buffer.data(), length), {});
        EXPECT_FALSE(result.ok) << "prefix of " << length << " bytes";
        EXPECT_EQ(result.error, EventError::invalid_json) << "prefix of " << length << " bytes";
    }
    const auto whole = validate_event(std::string_view(buffer.data(), valid.size()), {});
    ASSERT_TRUE(whole.ok) << whole.message;
    EXPECT_EQ(whole.event.json, valid);
}

TEST(Validation, EveryPrefixOfRichBodyIsInvalidJson) {
    const std::string valid =
        R"({"type":"order_status","orderId":"o-1","status":"\u0430\ud83d\ude00","userId":7,)"
        R"("items":[{"n":1.5e2,"t":true},null,"s\"q"]})";
    ASSERT_TRUE(validate_event(valid, {}).ok);
    for (std::size_t length = 0; length < valid.size(); ++length) {
        const std::string prefix = valid.substr(0, length);
        const auto result = validate_event(prefix, {});
        EXPECT_EQ(outcome(result), Expect::invalid_json) << prefix;
    }
}

TEST(Validation, IdTextDoesNotDependOnForm) {
    const auto number = validate_event(R"({"type":"shop_updated","shopId":7})", {});
    const auto text = validate_event(R"({"type":"shop_updated","shopId":"7"})", {});
    ASSERT_TRUE(number.ok && text.ok);
    EXPECT_EQ(number.event.shop_id, "7");
    EXPECT_EQ(number.event.shop_id, text.event.shop_id);
}

}  // namespace
}  // namespace shopcast
