-- sql/monitor_sync_since.sql — sync_since_lsn (docs/elections.md, RPO proof):
-- the monitor stores the LSN of the first report in which a primary's applied
-- synchronous_standby_names took their current value, and a promotion waits
-- for a stopped candidate at or past it.  Formation 'ss'; synthetic reports
-- as in monitor_failover.sql.  Last in the schedule (node ids of the others
-- stay as they are).
SET pg_autopilot_monitor.node_timeout = '1h';
\set SHOW_CONTEXT never

-- report(node, state, lsn, streaming, timeline): one keeper heartbeat; returns the goal.  A primary
-- reports as applied_sync_names the monitor's current names (its keeper was told and applied them).
CREATE FUNCTION pg_temp.report(id bigint, state text, lsn pg_lsn, streaming bool, tl int DEFAULT 1)
RETURNS text LANGUAGE sql AS $$
    UPDATE pg_autopilot.node SET healthy_since = now() - interval '2 hours'
     WHERE node_id = id AND healthy_since IS NOT NULL AND report_time > now() - interval '1 hour';
    SELECT a.assigned_state
      FROM pg_autopilot.node n,
           pg_autopilot.node_active(n.formation_id, n.node_id, state, true,
                                    state NOT IN ('single', 'wait_primary', 'primary', 'apply_settings'),
                                    tl, lsn, streaming, n.candidate_priority, n.replication_quorum, NULL,
                                    CASE WHEN state IN ('single', 'wait_primary', 'primary', 'apply_settings')
                                         THEN pg_autopilot.synchronous_standby_names(n.formation_id, n.group_id) ELSE '' END) a
     WHERE n.node_id = id
$$;
-- fail(node): the node stopped reporting and its health check failed.
CREATE FUNCTION pg_temp.fail(id bigint) RETURNS void LANGUAGE sql AS $$
    UPDATE pg_autopilot.node SET report_time = report_time - interval '2 hours' WHERE node_id = id;
    SELECT pg_autopilot.record_health(id, false);
$$;

------------------------------------------------------------------------------
-- In wait_primary (names '') ss1 acknowledges commits alone;
-- its first report as primary, with 'ANY 1 (...)', is at 0/5000100.  The
-- candidate stopped at 0/5000000 may lack commits ss1 acknowledged alone
-- before: the promotion waits until a stopped candidate reaches 0/5000100.
------------------------------------------------------------------------------
INSERT INTO pg_autopilot.formation (formation_id) VALUES ('ss');
\set sst 'SELECT node_name, reported_state, assigned_state, reported_lsn, applied_sync_names, sync_since_lsn FROM pg_autopilot.node WHERE formation_id = ''ss'' ORDER BY node_id;'
SELECT node_id AS sp FROM pg_autopilot.register_node('ss', 'ss1', '127.0.0.1', 5811, 7000000000000000009, 50, true) \gset
SELECT pg_temp.report(:sp, 'single', '0/5000000', false);
SELECT node_id AS sc FROM pg_autopilot.register_node('ss', 'ss2', '127.0.0.1', 5812, 7000000000000000009, 50, true) \gset
SELECT pg_temp.report(:sc, 'wait_standby', '0/0', false);
SELECT pg_temp.report(:sp, 'wait_primary', '0/5000000', false);
SELECT pg_temp.report(:sc, 'catchingup', '0/5000000', true);
SELECT pg_temp.report(:sc, 'secondary', '0/5000000', true);
:sst
-- ss1 applies the names and reports: sync_since_lsn is set.
SELECT pg_temp.report(:sp, 'primary', '0/5000100', false);
:sst
-- Same names again: sync_since_lsn keeps the first LSN.
SELECT pg_temp.report(:sp, 'primary', '0/5000200', false);
:sst
-- ss1 dies; ss2 stops at 0/5000000, before the names took effect: it waits.
SELECT pg_temp.fail(:sp);
SELECT pg_temp.report(:sc, 'prepare_promotion', '0/5000000', false);
SELECT pg_autopilot.proceed_groups() AS assignments;
:sst
-- ss2 had received up to 0/5000100 after all: promoted.
SELECT pg_temp.report(:sc, 'prepare_promotion', '0/5000100', false);
:sst
