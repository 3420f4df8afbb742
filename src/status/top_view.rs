//! What `--top` draws, as a pure function of a state-file snapshot (ratatui widgets into a
//! frame), plus the one-line form used when stdout is not a terminal. No terminal I/O here.

use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline};
use ratatui::Frame;
use serde_json::Value;

use super::query::bits;
use super::snapshot::StatusSnapshot;

/// One frame: the snapshot (None = no agent) and why there is none.
pub fn draw(f: &mut Frame, snap: Option<&StatusSnapshot>, problem: Option<&str>) {
    let [head, rates, spark, rest, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(f.area());
    f.render_widget(Paragraph::new("q or Ctrl-C quits").style(Style::default().add_modifier(Modifier::DIM)), foot);
    let Some(s) = snap else {
        f.render_widget(Paragraph::new(format!("ftagent --top: {}", problem.unwrap_or("waiting for the agent"))), head);
        return;
    };
    let title = format!(
        "ftagent {} · {} · {} · pid {}{}",
        s.version,
        s.interface,
        s.mode,
        s.pid,
        problem.map(|p| format!(" · STALE: {p}")).unwrap_or_default()
    );
    f.render_widget(Paragraph::new(title).style(Style::default().add_modifier(Modifier::BOLD)), head);
    f.render_widget(
        Paragraph::new(rate_lines(s)).block(Block::default().borders(Borders::ALL).title(" rates ")),
        rates,
    );
    let data: Vec<u64> = s.history.iter().map(|p| p.rx_pps.max(0.0) as u64).collect();
    let width = spark.width.saturating_sub(2) as usize;
    let shown = &data[data.len().saturating_sub(width)..];
    let peak = shown.iter().copied().max().unwrap_or(0);
    let spark_title = format!(" rx pps, last {} s (peak {peak}) ", shown.len());
    f.render_widget(
        Sparkline::default()
            .block(Block::default().borders(Borders::ALL).title(spark_title))
            .data(shown)
            .max(peak.max(s.thresholds.pps as u64).max(1))
            .style(Style::default().fg(Color::Cyan)),
        spark,
    );
    f.render_widget(Paragraph::new(detail_lines(s)).block(Block::default().borders(Borders::ALL)), rest);
}

fn rate_lines(s: &StatusSnapshot) -> Vec<Line<'static>> {
    let r = &s.rates;
    let t = &s.thresholds;
    let over = r.rx_pps > t.pps || r.rx_bps > t.bps;
    let style = if over { Style::default().fg(Color::Red).add_modifier(Modifier::BOLD) } else { Style::default() };
    vec![
        Line::from(vec![
            Span::raw("RX "),
            Span::styled(format!("{:>12.0} pps  {:>14}", r.rx_pps, bits(r.rx_bps)), style),
        ]),
        Line::from(format!("TX {:>12.0} pps  {:>14}", r.tx_pps, bits(r.tx_bps))),
        Line::from(format!(
            "threshold {:.0} pps / {}  (baseline {:.0} pps, {})",
            t.pps,
            bits(t.bps),
            t.baseline_pps,
            if t.dynamic { "dynamic" } else { "fixed" }
        )),
    ]
}

fn detail_lines(s: &StatusSnapshot) -> Vec<Line<'static>> {
    let p = &s.proto;
    let b = &s.baseline;
    let mut lines = vec![
        Line::from(format!("protocols  TCP {:.1}%  UDP {:.1}%  ICMP {:.1}%", p.tcp_pct, p.udp_pct, p.icmp_pct)),
        Line::from(if b.detection_active {
            format!("baseline   quality {}, p99 {:.0} pps; detection active", b.quality, b.p99_pps)
        } else {
            format!("baseline   learning; detection starts in {:.0} s", b.grace_left_s)
        }),
    ];
    match &s.incident {
        Some(i) => {
            lines.push(Line::styled(
                format!("INCIDENT   {} · {} · severity {} · {:.0} s", i.label, i.id, i.severity, i.duration_s),
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            ));
            for (key, name) in [
                ("target_ips", "targets"),
                ("top_src_ips", "sources"),
                ("top_dst_ports", "dst ports"),
                ("top_src_ports", "src ports"),
            ] {
                if let Some(list) = i.top.get(key).and_then(Value::as_array) {
                    lines.push(Line::from(format!("top {name:<10}{}", top_list(list))));
                }
            }
        }
        None => lines.push(Line::from(format!("incident   none ({} since start)", s.incidents_total))),
    }
    lines.push(Line::from(format!("spool      {} event(s) waiting", s.spool.events)));
    lines
}

/// `10.0.0.1 (512), 10.0.0.2 (90)` from `[{"ip": .., "count": ..}]` or `[{"port": ..}]`.
fn top_list(list: &[Value]) -> String {
    let item = |v: &Value| {
        let name = v.get("ip").or_else(|| v.get("port")).map(|x| x.to_string().trim_matches('"').to_string());
        format!("{} ({})", name.unwrap_or_default(), v.get("count").cloned().unwrap_or_default())
    };
    list.iter().take(5).map(item).collect::<Vec<_>>().join(", ")
}

/// The non-terminal form: one line per second.
pub fn one_line(s: &StatusSnapshot) -> String {
    let r = &s.rates;
    let incident = match &s.incident {
        Some(i) => format!("incident={} label={} duration_s={:.0}", i.id, i.label, i.duration_s),
        None => "incident=none".into(),
    };
    format!(
        "{} {} rx_pps={:.0} rx_bps={:.0} tx_pps={:.0} tx_bps={:.0} threshold_pps={:.0} threshold_bps={:.0} tcp={:.1}% udp={:.1}% icmp={:.1}% {incident}",
        s.updated_at,
        s.interface,
        r.rx_pps,
        r.rx_bps,
        r.tx_pps,
        r.tx_bps,
        s.thresholds.pps,
        s.thresholds.bps,
        s.proto.tcp_pct,
        s.proto.udp_pct,
        s.proto.icmp_pct
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::snapshot::{HistoryPoint, IncidentNow};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn screen(snap: Option<&StatusSnapshot>) -> String {
        let mut t = Terminal::new(TestBackend::new(100, 24)).unwrap();
        t.draw(|f| draw(f, snap, Some("no state file"))).unwrap();
        let buf = t.backend().buffer().clone();
        (0..buf.area.height)
            .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol().to_string()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn draws_rates_thresholds_incident_and_top_sources() {
        let mut s = StatusSnapshot { interface: "veth0".into(), ..Default::default() };
        s.rates.rx_pps = 123_456.0;
        s.thresholds.pps = 5000.0;
        s.history = (0..30).map(|i| HistoryPoint { unix_s: i, rx_pps: i as f64 * 100.0, rx_bps: 0.0 }).collect();
        let mut inc = IncidentNow { id: "abc".into(), label: "syn_flood".into(), ..Default::default() };
        inc.top.insert("top_src_ips".into(), serde_json::json!([{"ip": "10.1.2.3", "count": 77}]));
        inc.top.insert("target_ips".into(), serde_json::json!([{"ip": "10.9.9.9", "count": 70, "share": 0.9}]));
        s.incident = Some(inc);
        let text = screen(Some(&s));
        assert!(text.contains("123456 pps"), "{text}");
        assert!(text.contains("threshold 5000 pps"), "{text}");
        assert!(text.contains("INCIDENT   syn_flood"), "{text}");
        assert!(text.contains("10.1.2.3 (77)"), "{text}");
        assert!(text.contains("targets   10.9.9.9 (70)"), "{text}");
        assert!(text.contains("last 30 s (peak 2900)"), "{text}");
    }

    #[test]
    fn without_an_agent_says_why() {
        assert!(screen(None).contains("ftagent --top: no state file"));
    }

    #[test]
    fn one_line_carries_rates_and_thresholds() {
        let mut s = StatusSnapshot::default();
        s.rates.rx_pps = 10.4;
        s.thresholds.pps = 5000.0;
        let l = one_line(&s);
        assert!(l.contains("rx_pps=10 ") && l.contains("threshold_pps=5000 ") && l.contains("incident=none"), "{l}");
    }
}
