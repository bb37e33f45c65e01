// Prometheus' text format for both services, built only when /metrics is scraped: the hot
// paths keep plain (or relaxed atomic) counters, copied here into prometheus-cpp's families
// and written by its TextSerializer (escaping, number formatting, HELP/TYPE lines).
#pragma once

#include <prometheus/metric_family.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shopcast {

class Exposition {
  public:
    void counter(std::string_view name, std::string_view help, double value);
    void gauge(std::string_view name, std::string_view help, double value);

    // One counter family with one series per label value; every value appears, zeros too, so
    // a rate() over it never starts from a missing series.
    template <std::size_t N>
    void counter_by(std::string_view name, std::string_view help, std::string_view label,
                    const std::array<std::string_view, N>& values,
                    const std::array<std::uint64_t, N>& counts) {
        counter_by(name, help, label, std::span<const std::string_view>(values),
                   std::span<const std::uint64_t>(counts));
    }
    void counter_by(std::string_view name, std::string_view help, std::string_view label,
                    std::span<const std::string_view> values,
                    std::span<const std::uint64_t> counts);

    // `counts[i]` observations fell at or below `upper_bounds[i]` but above the previous bound
    // (not cumulative); counts has one more entry, for the observations above every bound.
    void histogram(std::string_view name, std::string_view help,
                   std::span<const double> upper_bounds, std::span<const std::uint64_t> counts,
                   double sum);

    std::string text() const;

  private:
    prometheus::MetricFamily& add(std::string_view name, std::string_view help,
                                  prometheus::MetricType type);

    std::vector<prometheus::MetricFamily> families_;
};

}  // namespace shopcast
