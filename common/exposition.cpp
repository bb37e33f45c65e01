#include "common/exposition.h"

#include <prometheus/text_serializer.h>

#include <limits>
#include <sstream>

namespace shopcast {

prometheus::MetricFamily& Exposition::add(std::string_view name, std::string_view help,
                                          prometheus::MetricType type) {
    prometheus::MetricFamily& family = families_.emplace_back();
    family.name = name;
    family.help = help;
    family.type = type;
    return family;
}

void Exposition::counter(std::string_view name, std::string_view help, double value) {
    add(name, help, prometheus::MetricType::Counter).metric.emplace_back().counter.value = value;
}

void Exposition::gauge(std::string_view name, std::string_view help, double value) {
    add(name, help, prometheus::MetricType::Gauge).metric.emplace_back().gauge.value = value;
}

void Exposition::counter_by(std::string_view name, std::string_view help, std::string_view label,
                            std::span<const std::string_view> values,
                            std::span<const std::uint64_t> counts) {
    prometheus::MetricFamily& family = add(name, help, prometheus::MetricType::Counter);
    for (std::size_t i = 0; i < values.size() && i < counts.size(); ++i) {
        prometheus::ClientMetric& series = family.metric.emplace_back();
        series.label.push_back({std::string(label), std::string(values[i])});
        series.counter.value = static_cast<double>(counts[i]);
    }
}

void Exposition::histogram(std::string_view name, std::string_view help,
                           std::span<const double> upper_bounds,
                           std::span<const std::uint64_t> counts, double sum) {
    prometheus::MetricFamily& family = add(name, help, prometheus::MetricType::Histogram);
    prometheus::ClientMetric::Histogram& histogram = family.metric.emplace_back().histogram;
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < counts.size(); ++i) {
        cumulative += counts[i];
        const double bound =
            i < upper_bounds.size() ? upper_bounds[i] : std::numeric_limits<double>::infinity();
        histogram.bucket.push_back({cumulative, bound});
    }
    histogram.sample_count = cumulative;
    histogram.sample_sum = sum;
}

std::string Exposition::text() const {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, families_);
    return out.str();
}

}  // namespace shopcast
