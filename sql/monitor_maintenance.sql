-- sql/monitor_maintenance.sql — enable_maintenance / disable_maintenance on a
-- standby and on the primary (which is switched over first), and their
-- refusals, each followed by proof that nothing changed.  Formation 'mt'.
SET pg_autopilot_monitor.node_timeout = '1h';
\set SHOW_CONTEXT never
INSERT INTO pg_autopilot.formation (formation_id) VALUES ('mt');

-- report(node, state, lsn, streaming, timeline): one keeper heartbeat; returns the goal.  A primary
-- reports as applied_sync_names the monitor's current names (its keeper was told and applied them).
CREATE FUNCTION pg_temp.report(id bigint, state text, lsn pg_lsn, streaming bool, tl int DEFAULT 1)
RETURNS text LANGUAGE sql AS $$
    SELECT a.assigned_state
      FROM pg_autopilot.node n,
           pg_autopilot.node_active(n.formation_id, n.node_id, state, true,
                                    state NOT IN ('single', 'wait_primary', 'primary', 'apply_settings'),
                                    tl, lsn, streaming, n.candidate_priority, n.replication_quorum, NULL,
                                    CASE WHEN state IN ('single', 'wait_primary', 'primary', 'apply_settings')
                                         THEN pg_autopilot.synchronous_standby_names(n.formation_id, n.group_id) ELSE '' END) a
     WHERE n.node_id = id
$$;
\set st 'SELECT s.node_id, s.node_name, s.current_state, s.assigned_state, s.reachable, n.wants_maintenance FROM pg_autopilot.show_state(''mt'') s JOIN pg_autopilot.node n USING (node_id) ORDER BY node_id;'
\set snap 'SET client_min_messages = warning; DROP TABLE IF EXISTS before_nodes, before_events; RESET client_min_messages; CREATE TEMP TABLE before_nodes AS SELECT * FROM pg_autopilot.node; CREATE TEMP TABLE before_events AS SELECT count(*) AS n FROM pg_autopilot.event;'
\set unchanged 'SELECT NOT EXISTS (SELECT * FROM pg_autopilot.node EXCEPT SELECT * FROM before_nodes) AND NOT EXISTS (SELECT * FROM before_nodes EXCEPT SELECT * FROM pg_autopilot.node) AND (SELECT count(*) FROM pg_autopilot.event) = (SELECT n FROM before_events) AS unchanged;'
CREATE TEMP TABLE mark (event_id bigint);
\set mark 'TRUNCATE mark; INSERT INTO mark SELECT max(event_id) FROM pg_autopilot.event;'
\set events 'SELECT node_name, reported_state, assigned_state, rule, description FROM pg_autopilot.show_events(''mt'', 100) WHERE event_id > (SELECT event_id FROM mark) AND rule IS NOT NULL ORDER BY event_id;'

-- mt1 primary, mt2 secondary.
SELECT node_id AS p FROM pg_autopilot.register_node('mt', 'mt1', '127.0.0.1', 5901, 7000000000000000010, 50, true) \gset
SELECT pg_temp.report(:p, 'single', '0/5000000', false);
SELECT node_id AS c FROM pg_autopilot.register_node('mt', 'mt2', '127.0.0.1', 5902, 7000000000000000010, 50, true) \gset
SELECT pg_temp.report(:c, 'wait_standby', '0/0', false);
SELECT pg_temp.report(:p, 'wait_primary', '0/5000000', false);
SELECT pg_temp.report(:c, 'catchingup', '0/5000000', true);
SELECT pg_temp.report(:c, 'secondary', '0/5000000', true);
SELECT pg_temp.report(:p, 'primary', '0/5000000', false);
:st

-- Refused: unknown node or formation, NULLs, not in maintenance.
:snap
SELECT pg_autopilot.enable_maintenance('mt9', 'mt');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.enable_maintenance('mt1', 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.enable_maintenance(NULL, 'mt');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.disable_maintenance('mt2', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.disable_maintenance('mt2', 'mt');
\echo :LAST_ERROR_SQLSTATE
:unchanged

------------------------------------------------------------------------------
-- 1. Maintenance of the standby: at once; the primary stops waiting for it.
------------------------------------------------------------------------------
:mark
SELECT pg_autopilot.enable_maintenance('mt2', 'mt');
:st
SELECT pg_temp.report(:c, 'maintenance', '0/5000000', false);
SELECT pg_temp.report(:p, 'wait_primary', '0/5000100', false);
:st
-- Refused: already in maintenance; a node in maintenance is never promoted;
-- no healthy standby to switch over to; maintenance of the primary without a
-- standby to take over.
:snap
SELECT pg_autopilot.enable_maintenance('mt2', 'mt');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.perform_promotion('mt2', 'mt');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.perform_switchover('mt');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.perform_failover('mt');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.enable_maintenance('mt1', 'mt');
\echo :LAST_ERROR_SQLSTATE
:unchanged
-- The primary fails while mt2 is in maintenance: mt2 is not promoted.
UPDATE pg_autopilot.node SET report_time = report_time - interval '2 hours' WHERE node_id = :p;
SELECT pg_autopilot.record_health(:p, false);
SELECT pg_autopilot.proceed_groups() AS assignments;
:st
SELECT pg_autopilot.record_health(:p, true);
SELECT pg_temp.report(:p, 'wait_primary', '0/5000100', false);
-- Back from maintenance: catchingup, then secondary.
SELECT pg_autopilot.disable_maintenance('mt2', 'mt');
:st
SELECT pg_temp.report(:c, 'catchingup', '0/5000100', true);
SELECT pg_temp.report(:c, 'secondary', '0/5000100', true);
SELECT pg_temp.report(:p, 'primary', '0/5000100', false);
:st
:events

------------------------------------------------------------------------------
-- 2. Maintenance of the primary: a switchover first; mt1 ends in maintenance
-- instead of following the new primary.
------------------------------------------------------------------------------
:mark
SELECT pg_autopilot.enable_maintenance('mt1', 'mt');
:st
-- Refused while it runs: already asked, and a second operation.
:snap
SELECT pg_autopilot.enable_maintenance('mt1', 'mt');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.enable_maintenance('mt2', 'mt');
\echo :LAST_ERROR_SQLSTATE
SELECT pg_autopilot.perform_switchover('mt');
\echo :LAST_ERROR_SQLSTATE
:unchanged
SELECT pg_temp.report(:p, 'draining', '0/5000200', false);
SELECT pg_temp.report(:c, 'secondary', '0/5000200', true);
SELECT pg_temp.report(:c, 'prepare_promotion', '0/5000200', false);
SELECT pg_temp.report(:p, 'demoted', '0/5000200', false);
SELECT pg_temp.report(:c, 'stop_replication', '0/5000300', false, 2);
SELECT pg_temp.report(:c, 'wait_primary', '0/5000300', false, 2);
:st
SELECT pg_temp.report(:p, 'maintenance', '0/5000200', false);
:st
-- Back: mt1 catches up and becomes secondary of mt2.
SELECT pg_autopilot.disable_maintenance('mt1', 'mt');
SELECT pg_temp.report(:p, 'catchingup', '0/5000300', true, 2);
SELECT pg_temp.report(:p, 'secondary', '0/5000300', true, 2);
SELECT pg_temp.report(:c, 'primary', '0/5000300', false, 2);
:st
:events
