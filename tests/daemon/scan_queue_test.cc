#include "daemon/scan_queue.h"

#include <catch2/catch.hpp>

using diskgate::daemon::ScanQueue;

TEST_CASE("scan queue: a request while idle starts a scan at once") {
  ScanQueue queue;
  auto scan = queue.request(false);
  REQUIRE(scan);
  CHECK_FALSE(scan->lost_events);
  CHECK(scan->requests == 1);
  CHECK(queue.running());
  CHECK_FALSE(queue.queued());
  CHECK_FALSE(queue.finished());
  CHECK_FALSE(queue.running());
}

TEST_CASE("scan queue: requests while one runs join one queued scan") {
  ScanQueue queue;
  REQUIRE(queue.request(false));
  for (int i = 0; i < 100; ++i) CHECK_FALSE(queue.request(false));
  CHECK(queue.queued());
  auto next = queue.finished();
  REQUIRE(next);
  CHECK(next->requests == 100);
  CHECK(queue.running());
  CHECK_FALSE(queue.queued());
  CHECK(queue.current().requests == 100);
  CHECK_FALSE(queue.finished());  // nothing asked meanwhile: idle
  CHECK_FALSE(queue.running());
  CHECK(queue.request(false));  // and the next request starts at once again
}

TEST_CASE("scan queue: lost events in any joined request make the queued scan forget identities") {
  ScanQueue queue;
  REQUIRE(queue.request(false));
  CHECK_FALSE(queue.request(false));
  CHECK_FALSE(queue.request(true));
  CHECK_FALSE(queue.request(false));
  auto next = queue.finished();
  REQUIRE(next);
  CHECK(next->lost_events);
  CHECK(next->requests == 3);
  // The running scan's own kind is not changed by later requests.
  CHECK_FALSE(queue.request(false));
  CHECK(queue.current().lost_events);
  CHECK_FALSE(queue.finished()->lost_events);
}
