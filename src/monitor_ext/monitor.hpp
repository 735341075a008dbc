/*
 * src/monitor_ext/monitor.hpp — declarations shared by the files of the
 * monitor extension pg_autopilot_monitor (PostgreSQL zone).
 *
 * Include after the server headers and compat.hpp.  Everything here may
 * ereport(ERROR) unless said otherwise; callers hold only POD locals.
 * Functions that run SQL need an SPI connection (SPI_connect done by the
 * caller).
 */
#pragma once

namespace autopilot::fsm {
struct GroupView;
}

namespace autopilot::monitor {

/* GUCs (module.cpp). */
extern int node_timeout_ms;             /* pg_autopilot_monitor.node_timeout */
extern int startup_grace_ms;            /* pg_autopilot_monitor.startup_grace */
extern int health_check_period_ms;      /* pg_autopilot_monitor.health_check_period, 0 = off */
extern int health_check_timeout_ms;     /* pg_autopilot_monitor.health_check_timeout */
extern char *monitor_database;          /* pg_autopilot_monitor.database */
extern char *health_check_user;         /* pg_autopilot_monitor.health_check_user, '' = OS user */
extern int health_check_max_retries;    /* pg_autopilot_monitor.health_check_max_retries */
extern int promote_lag_threshold_bytes; /* pg_autopilot_monitor.promote_lag_threshold */
extern int primary_demote_timeout_ms;   /* pg_autopilot_monitor.primary_demote_timeout */
extern int restart_grace_ms;            /* pg_autopilot_monitor.restart_grace */

/* Advisory locktag class of the group lock (field 4 of the locktag). */
constexpr uint16 kGroupLockClass = 10;

/* A node of one group as gathered through SPI; palloc'd, trivially destructible. */
struct GatheredNode {
	int64 node_id;
	char *name;
	char *host;
	int32 port;
	int64 system_identifier;
	bool system_identifier_null;
	uint8 reported; /* autopilot::fsm::NodeState values */
	uint8 assigned;
	uint8 last_told; /* goal returned by its last node_active call (the sync proof needs it) */
	bool healthy;
	uint64 lsn;
	uint32 timeline;
	bool streaming; /* walreceiver streaming, as last reported */
	int32 candidate_priority;
	bool replication_quorum;
	bool wants_maintenance; /* node.wants_maintenance */
	bool restarting;        /* announced a clean shutdown (node_stopping) within restart_grace, not reported since */
	int64 assigned_age_ms;  /* now() - state_change_time, >= 0 */
	/* Issue 4 (docs/elections.md). */
	int64 report_age_ms;      /* now() - report_time in ms, >= 0; INT64_MAX when it never reported */
	char *applied_sync_names; /* node.applied_sync_names, '' when NULL */
	char *told_sync_names;    /* node.last_told_sync_names, '' when NULL */
	bool promotion_target;    /* node.promotion_target */
	bool allow_data_loss;     /* node.allow_data_loss */
	bool settings_pending;    /* node.settings_pending: candidate_priority/replication_quorum are wanted values */
	bool wants_drop;          /* node.wants_drop */
	int64 healthy_for_ms;     /* now() - healthy_since in ms while healthy, else 0 */
	uint64 sync_since_lsn;    /* node.sync_since_lsn, 0 when NULL (RPO proof, docs/elections.md) */
};

struct GatheredGroup {
	const char *formation;
	int32 group_id;
	int32 number_sync_standbys;
	uint64 promote_lag_threshold_bytes; /* from the GUCs at gather time */
	uint64 primary_demote_timeout_ms;
	uint64 node_timeout_ms; /* pg_autopilot_monitor.node_timeout at gather time */
	int count;
	GatheredNode *nodes; /* ordered by node_id */
};

/*
 * SpiRun executes one statement with parameters through SPI and returns the
 * number of rows processed; ERROR (XX000) when SPI fails.  nulls may be
 * nullptr (no NULL parameter).  The statement's plan is prepared once per
 * backend and kept (spi_run.cpp): keepers call node_active every second.
 */
uint64 SpiRun(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls, bool read_only);

/* StateValue maps a state label to its NodeState value, -1 when unknown; never raises. */
int StateValue(const char *label);

/*
 * LockFormation locks the formation row (FOR UPDATE when exclusive, FOR SHARE
 * otherwise) and returns its number_sync_standbys; ERROR 42704 when the
 * formation does not exist.
 */
int32 LockFormation(const char *formation, bool exclusive);

/* LockGroup takes the transaction-level group lock (see the SQL file, LOCKING). */
void LockGroup(const char *formation, int32 group_id);

/*
 * LockNodeGroup locks the formation (FOR UPDATE when exclusive, else FOR
 * SHARE), finds node_name and locks and gathers its group; returns the
 * node's index.  Raises 42704 for an unknown formation or node.
 */
int LockNodeGroup(const char *formation, const char *node_name, bool exclusive, GatheredGroup *group);

/* GatherGroup reads every node of a group into palloc'd memory of the current context. */
void GatherGroup(const char *formation, int32 group_id, int32 number_sync_standbys, GatheredGroup *out);

/*
 * BuildGroupView turns a gathered group into the pure zone's view.  Pure
 * (may throw std::bad_alloc): call it only inside CallCpp.
 */
void BuildGroupView(const GatheredGroup &group, autopilot::fsm::GroupView &view);

/*
 * ProceedAndApply gathers the group, runs the pure rules (ProceedGroup) and
 * applies every assignment: UPDATE node, event with the rule's name, NOTIFY.
 * Returns the number of assignments.  When there is none and `unchanged` is
 * given, it receives the gathered group (what the table still holds).
 */
int ProceedAndApply(const char *formation, int32 group_id, int32 number_sync_standbys,
					GatheredGroup *unchanged = nullptr);

/* The operator requests of docs/failover.md, decided by the pure functions of group_rules.hpp. */
enum class Request { Switchover, Failover, Promotion, EnableMaintenance, DisableMaintenance, Drop };

/*
 * ApplyRequest runs the pure function of `request` on a gathered group
 * (node_name for the per-node requests) and applies its assignments like
 * ProceedAndApply does.  A refusal (autopilot::Error) becomes the ERROR, with
 * its SQLSTATE and hint, before anything is written.  flag: for Failover,
 * allow_data_loss (marks the group's primary in the view as
 * perform_failover(allow_data_loss => true) does in the table); for Drop,
 * force.  Returns the number of assignments.  Caller holds SPI, the
 * formation lock and the group lock.
 */
int ApplyRequest(const GatheredGroup &group, Request request, const char *node_name, bool flag = false);

/*
 * RecordEvent inserts an event for node_id (rule may be nullptr), logs the
 * description at LOG and sends NOTIFY state with the node's current row.
 */
void RecordEvent(int64 node_id, const char *rule, const char *description);

/*
 * SyncStandbyNames computes synchronous_standby_names of a gathered group
 * through the pure function; result palloc'd in the current context.
 */
char *SyncStandbyNames(const GatheredGroup &group);

/* NodeHealthy is the monitor's verdict; see _node_healthy in the SQL file. */
bool NodeHealthy(bool report_time_null, TimestampTz report_time, int16 health, bool health_check_time_null,
				 TimestampTz health_check_time);

/* Health-check worker entry point (health_check.cpp). */
void RegisterHealthCheckWorker();

} // namespace autopilot::monitor
