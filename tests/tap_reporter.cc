// The reporter meson runs the Catch2 binaries with (`-r diskgate-tap`,
// tests/meson.build, protocol 'tap'): one TAP line per TEST_CASE, so that
// meson counts cases, not binaries:
//
//   ok 3 - name
//   not ok 4 - name                (after its failures, as "# " lines)
//   ok 5 - name # SKIP reason      (a case that called SKIP_TEST)
//   1..5                           (the plan, once the run is over)
//
// Catch2's own TAP reporter prints one line per assertion and does not know
// SKIP_TEST. Failed assertions, unexpected exceptions and WARN/FAIL messages
// are printed as they happen, as TAP comments and on stderr: meson test
// --print-errorlogs shows a TAP test's stderr only (stdout is the stream it
// parses), so that is where a failing case's log says where and why.
#include <cstddef>
#include <sstream>
#include <string>

// The reporter interfaces, which catch.hpp otherwise only declares with the runner.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

#include "skip.h"

namespace diskgate::testing {
namespace {

bool tap_active = false;

// A TAP description holds no '#' (it would start a directive) and no line break.
std::string tap_text(std::string text) {
  for (char& c : text)
    if (c == '#') c = '_';
    else if (c == '\n' || c == '\r') c = ' ';
  return text;
}

// Every line of `text` as a TAP comment.
void comment(std::ostream& out, const std::string& text, const std::string& indent = "") {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) out << "# " << indent << line << "\n";
}

class TapReporter : public Catch::StreamingReporterBase<TapReporter> {
 public:
  explicit TapReporter(const Catch::ReporterConfig& config) : StreamingReporterBase(config) {
    m_reporterPrefs.shouldRedirectStdOut = false;
    m_reporterPrefs.shouldReportAllAssertions = false;
    tap_active = true;
  }
  ~TapReporter() override = default;

  static std::string getDescription() {
    return "TAP for meson: one line per test case, SKIP_TEST as a # SKIP directive";
  }

  void noMatchingTestCases(const std::string& spec) override {
    // A test spec that names nothing is a mistake in the test list, not a skip.
    stream << "Bail out! no test case matches " << tap_text(spec) << std::endl;
  }

  void reportInvalidArguments(const std::string& arg) override {
    stream << "Bail out! invalid test spec " << tap_text(arg) << std::endl;
  }

  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    StreamingReporterBase::testCaseStarting(info);
    skips_before_ = skips().size();
  }

  void assertionStarting(const Catch::AssertionInfo&) override {}

  bool assertionEnded(const Catch::AssertionStats& stats) override {
    const Catch::AssertionResult& result = stats.assertionResult;
    const auto type = result.getResultType();
    // WARN("SKIP: ...") from SKIP_TEST shows in the case's directive already.
    if (type == Catch::ResultWas::Warning && result.getMessage().rfind("SKIP: ", 0) == 0) return true;
    if (result.isOk() && type != Catch::ResultWas::Warning) return true;

    const Catch::SourceLineInfo& where = result.getSourceInfo();
    std::ostringstream text;
    text << where.file << ":" << where.line << ": ";
    switch (type) {
      case Catch::ResultWas::Warning: text << "warning"; break;
      case Catch::ResultWas::ThrewException: text << "FAILED: unexpected exception"; break;
      case Catch::ResultWas::FatalErrorCondition: text << "FAILED: fatal error condition"; break;
      case Catch::ResultWas::DidntThrowException: text << "FAILED: no exception thrown"; break;
      case Catch::ResultWas::ExplicitFailure: text << "FAILED"; break;
      default: text << (result.isOk() ? "failed, but allowed to" : "FAILED"); break;
    }
    text << "\n";
    if (result.hasExpression()) {
      text << "  " << result.getExpressionInMacro() << "\n";
      if (result.hasExpandedExpression()) text << "with expansion:\n  " << result.getExpandedExpression() << "\n";
    }
    for (const Catch::MessageInfo& info : stats.infoMessages)
      if (info.type == Catch::ResultWas::Info) text << "with message:\n  " << info.message << "\n";
    if (result.hasMessage()) text << (type == Catch::ResultWas::ThrewException ? "with exception message:\n  " : "  ")
                                  << result.getMessage() << "\n";
    const std::string name = currentTestCaseInfo ? currentTestCaseInfo->name : std::string();
    stream << "# " << tap_text(name) << "\n";
    comment(stream, text.str(), "  ");
    stream.flush();
    // meson test --print-errorlogs shows only the stderr of a TAP test.
    Catch::cerr() << name << ":\n" << text.str() << std::flush;
    return true;
  }

  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    ++number_;
    const std::string name = tap_text(stats.testInfo.name);
    if (stats.totals.testCases.failed > 0) {
      ++failed_;
      stream << "not ok " << number_ << " - " << name << std::endl;
    } else if (skips().size() > skips_before_) {
      ++skipped_;
      std::string reasons;
      for (std::size_t i = skips_before_; i < skips().size(); ++i)
        reasons += (reasons.empty() ? "" : "; ") + skips()[i];
      stream << "ok " << number_ << " - " << name << " # SKIP " << tap_text(reasons) << std::endl;
    } else {
      stream << "ok " << number_ << " - " << name << std::endl;
    }
    StreamingReporterBase::testCaseEnded(stats);
  }

  void skipTest(const Catch::TestCaseInfo& info) override {
    // Not run because the run was aborted (-a, -x) after a failure.
    ++number_;
    ++skipped_;
    stream << "ok " << number_ << " - " << tap_text(info.name) << " # SKIP not run: the run was aborted" << std::endl;
  }

  void testRunEnded(const Catch::TestRunStats& stats) override {
    stream << "1.." << number_ << "\n# " << number_ - failed_ - skipped_ << " passed, " << failed_ << " failed, "
           << skipped_ << " skipped" << std::endl;
    StreamingReporterBase::testRunEnded(stats);
  }

 private:
  std::size_t skips_before_ = 0;
  std::size_t number_ = 0, failed_ = 0, skipped_ = 0;
};

CATCH_REGISTER_REPORTER("diskgate-tap", TapReporter)

}  // namespace

bool tap_reporter_active() { return tap_active; }

}  // namespace diskgate::testing
