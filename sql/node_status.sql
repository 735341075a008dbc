--
-- node_status: the keeper runs in a server without a monitor or node name
-- configured (test/node.conf), reports what is missing, and the server works.
--
CREATE EXTENSION pg_autopilot;

-- The keeper starts with the postmaster; wait until it has published its
-- first verdict (a poll, not a timed sleep).
CREATE FUNCTION pg_temp.wait_for_status(pattern text) RETURNS bool
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..6000 LOOP
        IF (SELECT keeper_pid IS NOT NULL AND last_error LIKE pattern FROM pg_autopilot.status()) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.01);
    END LOOP;
    RETURN false;
END $$;

SELECT pg_temp.wait_for_status('%not set%');
SELECT node_name, node_id, formation, group_id, current_state, assigned_state,
       monitor_reachable, last_error, keeper_pid IS NOT NULL AS keeper_running
  FROM pg_autopilot.status();

-- Defaults of the settings.
SHOW pg_autopilot.monitor;
SHOW pg_autopilot.formation;
SHOW pg_autopilot.hostname;
SHOW pg_autopilot.candidate_priority;
SHOW pg_autopilot.replication_quorum;
SHOW pg_autopilot.heartbeat_interval;
SHOW pg_autopilot.monitor_timeout;

-- The prefix is reserved and the settings change only by reload.
SET pg_autopilot.no_such_setting = 1;
SET pg_autopilot.node_name = 'node1';
SET pg_autopilot.candidate_priority = 101;

-- An invalid node name is reported after a reload, the server keeps working.
ALTER SYSTEM SET pg_autopilot.node_name = 'bad name';
SELECT pg_reload_conf();
SELECT pg_temp.wait_for_status('%node name%');
SELECT last_error LIKE '%pg_autopilot.monitor is not set%' AS monitor_reported,
       last_error LIKE '%node name%' AS bad_name_reported
  FROM pg_autopilot.status();
ALTER SYSTEM RESET pg_autopilot.node_name;
SELECT pg_reload_conf();
SELECT pg_temp.wait_for_status('%pg_autopilot.node_name is not set%');

-- The server works.
CREATE TABLE node_status_t (a int PRIMARY KEY);
INSERT INTO node_status_t SELECT generate_series(1, 3);
SELECT a FROM node_status_t ORDER BY a;
DROP TABLE node_status_t;

DROP EXTENSION pg_autopilot;
SELECT count(*) FROM pg_namespace WHERE nspname = 'pg_autopilot';
