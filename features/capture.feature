Feature: Packet capture mode
  With root or CAP_NET_RAW, a capture build of ftagent looks at the packets of a flood, not only
  at the counters: it names the attack, shows where it comes from, and keeps a PCAP file as
  evidence. Without that privilege the same build says why once and keeps detecting from counters.

  Background:
    Given a capture build of ftagent
    And two network namespaces joined by a veth pair
    And a config that monitors the veth with a 3 second grace period and keeps PCAP files

  Scenario: A privileged agent classifies a SYN flood from packets
    Given the agent runs as root on the veth
    And the grace period is over
    When the other namespace sends a SYN flood to port 80 for 3 seconds
    Then the event log has an "incident_open" with attack_family "syn_flood" classified by "packets"
    And its top source address is the flooding namespace's address
    And its top destination port is 80
    And the "incident_resolve" names a PCAP file "<incident id>_<UTC time>.pcap"
    And capinfos reads that file, which starts with the packets held before the incident opened
    And the file is readable by its owner only, in a directory only its owner can enter

  Scenario: An unprivileged agent falls back to counters
    Given the agent runs as the user nobody, without capabilities
    When the other namespace sends a SYN flood to port 80 for 3 seconds
    Then the log has exactly one line saying packet capture is off because there is no CAP_NET_RAW
    And that line tells how to enable it with "sudo ftagent --install-service"
    And the "agent_start" event has mode "limited"
    And the event log has an "incident_open" classified by "counters"

  Scenario: A capture file is classified offline
    When I run "ftagent --analyze pkt.TCP.synflood.spoofed.pcap --json"
    Then it exits 0 and prints one JSON object
    And "packets" equals what capinfos counts in the file
    And "attack_family" is "syn_flood"

  Scenario: A file that is not a capture is refused clearly
    When I run "ftagent --analyze notes.txt"
    Then it exits 1
    And the error names the file and says it is not a capture file
