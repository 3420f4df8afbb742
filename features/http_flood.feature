Feature: HTTP floods seen in a web server's access log, on a shared host
  On a shared host the user cannot capture packets, and an HTTP flood of a few thousand
  requests per second on keep-alive connections is too few packets for the counters to notice,
  yet enough to take a PHP site or its database down. The user can read their own web server's
  access log. ftagent follows that log as an ordinary user, learns the normal request rate,
  and opens an "http_flood" incident when a flood arrives, naming who sends it and what it hits.

  Background:
    Given an ordinary user whose web server writes a combined-format access log
    And ftagent follows that log with a 2 second grace period

  Scenario: A flood from one client
    Given the site serves 20 requests per second of normal traffic for 5 seconds
    When one client sends 1500 requests per second to "/login"
    Then an "http_flood" incident opens within 2 seconds
    And the incident is labelled "single_source" from "access_log" at layer 7
    And that client is the top client of the incident
    And the Prometheus textfile shows the requests per second of the log

  Scenario: Twenty clients flooding one path
    Given the site serves 20 requests per second of normal traffic for 5 seconds
    When 20 clients send 1500 requests per second in total to "/search"
    Then an "http_flood" incident opens within 2 seconds
    And the incident is labelled "path_flood" from "access_log" at layer 7
    And "/search" is the top path of the incident

  Scenario: The log is rotated while the flood goes on
    Given the site serves 20 requests per second of normal traffic for 5 seconds
    And one client sends 1500 requests per second to "/login"
    And an "http_flood" incident has opened
    When the log is renamed and the web server starts a new one
    And the flood stops
    Then the incident resolves with reason "traffic_normal"
    And every request written after ftagent started was read once, give or take one second of them

  Scenario: Normal traffic opens nothing
    Given the site serves 20 requests per second of normal traffic for 8 seconds
    Then no "http_flood" incident has opened
