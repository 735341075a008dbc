# bench/peers/writer.pl — the benchmarks' writer (as bench/lib.sh's, with a
# table and a first id): one psql and one new connection per insert through
# CONNINFO (a multi-host URI follows the primary), one line per attempt in LOG:
#   ack <id> <start> <end>  |  fail <id> <start> <end> <error>
# (epoch seconds).  Retries 10 ms after a failure; stops when LOG.stop exists
# or after MAX_SECS.  An attempt is bounded by a 5 s overall timeout.
#   perl writer.pl CONNINFO LOG MAX_SECS TABLE FIRST_ID
use strict;
use warnings;
use IPC::Run;
use Time::HiRes qw(time);
my ($conn, $file, $max, $table, $id) = @ARGV;
open my $fh, ">>", $file or die "$file: $!";
$fh->autoflush(1);
my $deadline = time + $max;
while (time < $deadline && !-e "$file.stop") {
	my ($out, $err) = ("", "");
	my $t0 = time;
	my $ok = eval {
		IPC::Run::run([ "psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-d", $conn, "-c", "INSERT INTO $table (id) VALUES ($id)" ],
			"<", \undef, ">", \$out, "2>", \$err, IPC::Run::timeout(5));
	};
	my $rc = $?;
	my $t1 = time;
	if ($ok && $rc == 0) { printf $fh "ack %d %.6f %.6f\n", $id, $t0, $t1; }
	else {
		my $why = $@ ? "timeout" : $err;
		$why =~ s/\s+/ /g;
		printf $fh "fail %d %.6f %.6f %s\n", $id, $t0, $t1, substr($why, 0, 200);
		select(undef, undef, undef, 0.01);
	}
	$id++;
}
