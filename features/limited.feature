Feature: Limited mode — detection from counters, no root needed
  On a shared host ftagent runs as an ordinary user. It reads the kernel's interface counters,
  learns what normal traffic looks like, opens an incident when a flood arrives and resolves it
  when traffic calms down. Everything is written to a local event log; no account is needed.

  Scenario: Starting without root
    Given an ordinary user with no ftagent config at all
    When the user starts ftagent
    Then the event log in the user's state directory records "agent_start"
    And the agent runs in "limited" mode and says why capture is off
    And on SIGTERM the agent records "agent_stop" and exits with status 0 within 5 seconds

  Scenario: An attack is detected from counters
    Given a host whose counters show 2000 packets per second of normal traffic
    And ftagent watches that host with a 1 second grace period
    When a UDP flood of 200000 packets per second to a closed port arrives
    Then an "incident_open" event is recorded within 2 seconds
    And the incident is labelled "udp_flood" from "counters"

  Scenario: The incident resolves after traffic calms
    Given a host whose counters show 2000 packets per second of normal traffic
    And ftagent watches that host with a 1 second grace period
    And a UDP flood of 200000 packets per second to a closed port has been detected
    When the traffic goes back to 2000 packets per second
    Then an "incident_resolve" event is recorded with reason "traffic_normal"
    And it names the same incident as the "incident_open" event

  Scenario: A restart keeps the learned baseline
    Given a host whose counters show 2000 packets per second of normal traffic
    And ftagent has learned that host's traffic and was stopped with SIGTERM
    When ftagent starts again with a 600 second grace period
    Then the "agent_start" event says the saved baseline was restored
    # 20000 pps on top of the 2000 normal is over the restored threshold but under 10x the 5000 pps
    # floor, the only bar a fresh start's grace period lets through: detected only if restored.
    And a UDP flood of 20000 packets per second is detected without waiting for the grace period

  Scenario: A broken config is rejected with a helpful message
    Given a config file with a JSON syntax error on line 3
    When ftagent is started with that config
    Then it exits with status 78
    And the error names the file, line 3 and the column
