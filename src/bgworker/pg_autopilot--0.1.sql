/*
 * src/bgworker/pg_autopilot--0.1.sql — SQL API of the data-node extension
 * pg_autopilot (schema pg_autopilot).
 *
 * status() reads the keeper's status from shared memory: it works on the
 * primary and on standbys, where the extension arrives by replication.
 *
 * The schema is created here, not through "schema =" in the control file:
 * names starting with pg_ are reserved for system schemas, and only
 * allow_system_table_mods (superuser, reset when this script ends) lets
 * CREATE SCHEMA use one.  Being created by the script, the schema belongs to
 * the extension and goes away with DROP EXTENSION.
 */
\echo Use "CREATE EXTENSION pg_autopilot" to load this file. \quit

SET LOCAL allow_system_table_mods = on;
CREATE SCHEMA pg_autopilot;
RESET allow_system_table_mods;
GRANT USAGE ON SCHEMA pg_autopilot TO PUBLIC;

CREATE FUNCTION pg_autopilot.status(
    OUT node_name text,
    OUT node_id bigint,
    OUT formation text,
    OUT group_id int,
    OUT current_state text,
    OUT assigned_state text,
    OUT monitor_reachable bool,
    OUT last_error text,
    OUT keeper_pid int)
RETURNS record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'pg_autopilot_status';

COMMENT ON FUNCTION pg_autopilot.status() IS
  'this node''s keeper: node id, group, current and assigned state, monitor reachability, last error';

-- Operator functions for this node, forwarded to the monitor with the
-- keeper's pg_autopilot.monitor connection string (docs/failover.md).  They
-- act with the monitor role of the keeper: superusers only unless granted.
CREATE FUNCTION pg_autopilot.perform_switchover()
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'pg_autopilot_perform_switchover';

COMMENT ON FUNCTION pg_autopilot.perform_switchover() IS
  'asks the monitor for a switchover of this node''s group';

CREATE FUNCTION pg_autopilot.enable_maintenance()
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'pg_autopilot_enable_maintenance';

COMMENT ON FUNCTION pg_autopilot.enable_maintenance() IS
  'asks the monitor to put this node into maintenance (a primary is switched over first)';

CREATE FUNCTION pg_autopilot.disable_maintenance()
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'pg_autopilot_disable_maintenance';

COMMENT ON FUNCTION pg_autopilot.disable_maintenance() IS
  'asks the monitor to take this node out of maintenance';

CREATE FUNCTION pg_autopilot.show_state(
    OUT node_name          text,
    OUT node_id            bigint,
    OUT group_id           int,
    OUT host               text,
    OUT port               int,
    OUT lsn                pg_lsn,
    OUT reachable          bool,
    OUT current_state      text,
    OUT assigned_state     text,
    OUT candidate_priority int,
    OUT replication_quorum bool)
RETURNS SETOF record
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'pg_autopilot_show_state';

COMMENT ON FUNCTION pg_autopilot.show_state() IS
  'the monitor''s show_state() of this node''s formation';

REVOKE ALL ON FUNCTION
    pg_autopilot.perform_switchover(),
    pg_autopilot.enable_maintenance(),
    pg_autopilot.disable_maintenance(),
    pg_autopilot.show_state()
FROM PUBLIC;
