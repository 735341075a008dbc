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
