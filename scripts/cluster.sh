#!/usr/bin/env bash
# scripts/cluster.sh flink|spark|prism up|down|status
#
# A real Apache Flink, Apache Spark or Prism engine on this machine, for trying an export on
# it before a real cluster (and for the test suite). `up` installs what the engine needs on
# first use, starts it, waits until it accepts jobs and prints, on its LAST line of stdout,
# the flags to add to the export command:
#
#   FLAGS=$(scripts/cluster.sh flink up)
#   segments-export --release R --output OUT $FLAGS
#   scripts/cluster.sh flink down
#
#   flink  Flink 1.19.3 standalone: one JobManager and two TaskManagers (separate JVMs, two
#          slots each, so that a job at parallelism 2 still finds slots after losing one),
#          from PyPI's apache-flink / apache-flink-libraries; a fixed-delay restart
#          strategy. The export runs with FlinkRunner, which starts Beam's Flink job server
#          (beam-runners-flink-1.19 2.70.0 and its dependencies from Maven Central, as a
#          jar whose manifest holds the classpath) for each job.
#   spark  Spark 3.5.0 standalone: one master and two workers (one core each), from
#          PyPI's pyspark; SparkRunner with Beam's Spark job server (beam-runners-spark-3
#          2.70.0, the same way).
#   prism  Beam's portable runner in Go, built with `go install` (v2.70.0), started as a
#          job server; PrismRunner, SDK workers in the launcher (LOOPBACK).
#
# Flink and Spark run the Python code in SDK worker processes started by a worker pool
# (`python -P -m pipeline.worker_pool`, environment EXTERNAL) of $BEAM_PYTHON, which must
# have apache-beam 2.70.0 and this project installed.
#
# Everything is downloaded once into $SEGEXPORT_ENGINES_CACHE (default
# ${XDG_CACHE_HOME:-~/.cache}/segments-export/engines); Maven uses its own local repository
# (~/.m2, or $SEGEXPORT_MAVEN_REPO). Each engine's processes, logs and scratch space live in
# $SEGEXPORT_ENGINES_STATE/<engine> (default <cache>/state), which is also the working folder
# of every process started here. `down` stops exactly the processes `up` started (each in
# its own process group, with its children: SDK workers, Spark executors), recorded with
# their start time so that a recycled PID is never touched.
#
# Anything missing or wrong (no Java 11/17, no Maven or Go for the first install, a download
# that fails, a port in use, an engine that does not come up) prints one line on stderr and
# exits 2; `up` then leaves nothing running.
#
# Environment: BEAM_PYTHON (default: $VIRTUAL_ENV/bin/python, else this clone's
# .venv/bin/python, else python3), ENGINE_READY_TIMEOUT (seconds, default 180), and the
# ports: FLINK_REST_PORT (18081) FLINK_RPC_PORT (16123) FLINK_WORKER_POOL_PORT (18050)
# SPARK_MASTER_PORT (17077) SPARK_UI_PORT (18080) SPARK_WORKER_UI_PORT (18090: +1, +2)
# SPARK_WORKER_POOL_PORT (18150) PRISM_JOB_PORT (18073, and +1 for its web port).
set -u -o pipefail

BEAM_VERSION=2.70.0
# Maven Central (as reachable here) serves no beam-runners-java-job-service 2.70.0; 2.65.0
# is the newest it serves, and the 2.70 runners run with it: every reference from the 2.70
# jars into its 22 classes (org.apache.beam.runners.jobsubmission) exists in 2.65.0.
JOB_SERVICE_VERSION=2.65.0
FLINK_VERSION=1.19.3
FLINK_MINOR=1.19
SPARK_VERSION=3.5.0   # what beam-runners-spark-3 2.70.0 is built against
SLF4J_VERSION=2.0.16
LAYOUT=1              # bump when what is built into the cache changes

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${SEGEXPORT_ENGINES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/segments-export/engines}
STATE_ROOT=${SEGEXPORT_ENGINES_STATE:-$CACHE/state}
READY_TIMEOUT=${ENGINE_READY_TIMEOUT:-180}
if [ -z "${BEAM_PYTHON:-}" ]; then
  if [ -n "${VIRTUAL_ENV:-}" ]; then BEAM_PYTHON=$VIRTUAL_ENV/bin/python
  elif [ -x "$HERE/../.venv/bin/python" ]; then BEAM_PYTHON=$(cd "$HERE/.." && pwd)/.venv/bin/python
  else BEAM_PYTHON=python3; fi
fi

FLINK_REST_PORT=${FLINK_REST_PORT:-18081}
FLINK_RPC_PORT=${FLINK_RPC_PORT:-16123}
FLINK_WORKER_POOL_PORT=${FLINK_WORKER_POOL_PORT:-18050}
SPARK_MASTER_PORT=${SPARK_MASTER_PORT:-17077}
SPARK_UI_PORT=${SPARK_UI_PORT:-18080}
SPARK_WORKER_UI_PORT=${SPARK_WORKER_UI_PORT:-18090}
SPARK_WORKER_POOL_PORT=${SPARK_WORKER_POOL_PORT:-18150}
PRISM_JOB_PORT=${PRISM_JOB_PORT:-18073}

die() { echo "cluster.sh: $*" >&2; exit 2; }
log() { echo "cluster.sh: $*" >&2; }
usage() { echo "usage: cluster.sh flink|spark|prism up|down|status" >&2; exit 2; }

[ $# -eq 2 ] || usage
ENGINE=$1 ACTION=$2
case $ENGINE in flink|spark|prism) ;; *) usage ;; esac
case $ACTION in up|down|status) ;; *) usage ;; esac
STATE=$STATE_ROOT/$ENGINE
PIDS=$STATE/pids

# --- checks -------------------------------------------------------------------------------
port_busy() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
need_free() {
  local p
  for p in "$@"; do
    port_busy "$p" && die "port $p is already in use (another engine, or set the ports: see the top of scripts/cluster.sh)"
  done
  return 0
}
need_cmd() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"; }

need_java() {
  need_cmd java "Flink $FLINK_MINOR and Spark 3.5 need a Java 11 or 17 runtime (e.g. apt-get install openjdk-17-jre-headless), on PATH"
  local v
  v=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  case $v in
    11|17) ;;
    *) die "java on PATH is Java ${v:-of an unknown version}: Flink $FLINK_MINOR and Spark 3.5 need Java 11 or 17 (put one first on PATH)" ;;
  esac
}

check_beam_python() {
  local v
  v=$(cd "$STATE" && "$BEAM_PYTHON" -P -c 'import apache_beam, pipeline.worker_pool; print(apache_beam.__version__)' 2>/dev/null) \
    || die "$BEAM_PYTHON cannot import apache_beam and this project (set BEAM_PYTHON to the python of a venv with both, e.g. this clone's .venv after make install)"
  [ "$v" = "$BEAM_VERSION" ] \
    || die "$BEAM_PYTHON has apache-beam $v; the job servers are Beam $BEAM_VERSION: install the project's pinned version (pip install -e .)"
}

# --- processes ------------------------------------------------------------------------------
# Field 22 of /proc/PID/stat: the process's start time, which tells a recycled PID apart.
started_at() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f20; }

# start NAME LOGFILE CMD...: CMD in its own session (so its process group holds it and its
# children), recorded as "NAME PID STARTTIME" in $PIDS.
start() {
  local name=$1 logf=$2
  shift 2
  setsid "$@" >"$logf" 2>&1 </dev/null &
  local pid=$!
  local t=""
  while [ -z "$t" ] && kill -0 "$pid" 2>/dev/null; do t=$(started_at "$pid"); done
  echo "$name $pid ${t:-0}" >>"$PIDS"
  log "started $name (pid $pid, log $logf)"
}

ours() { [ -n "$2" ] && [ "$(started_at "$1")" = "$2" ]; }

stop_all() {
  [ -f "$PIDS" ] || return 0
  local name pid t i alive
  while read -r name pid t; do
    ours "$pid" "$t" && kill -TERM -- "-$pid" 2>/dev/null
  done < <(tac "$PIDS")  # the last started first
  for i in $(seq 100); do
    alive=0
    while read -r name pid t; do ours "$pid" "$t" && alive=1; done <"$PIDS"
    [ $alive = 0 ] && break
    sleep 0.2
  done
  while read -r name pid t; do
    if ours "$pid" "$t"; then kill -KILL -- "-$pid" 2>/dev/null; log "killed $name ($pid) after 20 s"; fi
  done <"$PIDS"
  rm -f "$PIDS"
}

fail_up() { stop_all; die "$*"; }

# wait_for WHAT CMD...: polls CMD until it succeeds; every started process must stay alive.
wait_for() {
  local what=$1
  shift
  local deadline=$(($(date +%s) + READY_TIMEOUT)) name pid t
  while ! "$@" 2>/dev/null; do
    while read -r name pid t; do
      ours "$pid" "$t" || fail_up "$name exited while waiting for $what (see $STATE/$name.log)"
    done <"$PIDS"
    [ "$(date +%s)" -lt $deadline ] || fail_up "$what not ready after ${READY_TIMEOUT}s (logs in $STATE)"
    sleep 0.25
  done
}

json_check() {  # json_check URL PYTHON-EXPRESSION-ON-d
  python3 - "$1" "$2" <<'EOF'
import json, sys, urllib.request
d = json.load(urllib.request.urlopen(sys.argv[1], timeout=2))
sys.exit(0 if eval(sys.argv[2]) else 1)
EOF
}

# --- installs -------------------------------------------------------------------------------
mvn_repo_opt() { [ -n "${SEGEXPORT_MAVEN_REPO:-}" ] && echo "-Dmaven.repo.local=$SEGEXPORT_MAVEN_REPO"; }

# install_jars DIR ARTIFACT [EXTRA-DEPENDENCY-XML]: org.apache.beam:ARTIFACT:$BEAM_VERSION and
# its runtime dependencies into DIR/lib (Maven).
install_jars() {
  local dir=$1 artifact=$2 extra=${3:-}
  [ -f "$dir/lib/.done" ] && return 0
  need_cmd mvn "Maven is needed once, to fetch Beam's job server jars from Maven Central (e.g. apt-get install maven)"
  mkdir -p "$dir" || die "cannot create $dir"
  cat >"$dir/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>segments-export.engines</groupId><artifactId>$artifact-job-server</artifactId>
  <version>$BEAM_VERSION</version><packaging>pom</packaging>
  <dependencyManagement><dependencies>
    <dependency><groupId>org.apache.beam</groupId><artifactId>beam-runners-java-job-service</artifactId><version>$JOB_SERVICE_VERSION</version></dependency>
    <!-- job-service 2.65.0 would bring harness and expansion-service 2.65.0, whose own copy
         of runners-core-java classes breaks Spark (InvalidClassException between driver
         and executors): keep them at the runners' version -->
    <dependency><groupId>org.apache.beam</groupId><artifactId>beam-sdks-java-harness</artifactId><version>$BEAM_VERSION</version></dependency>
    <dependency><groupId>org.apache.beam</groupId><artifactId>beam-sdks-java-expansion-service</artifactId><version>$BEAM_VERSION</version></dependency>
  </dependencies></dependencyManagement>
  <dependencies>
    <dependency><groupId>org.apache.beam</groupId><artifactId>$artifact</artifactId><version>$BEAM_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>$SLF4J_VERSION</version></dependency>
    $extra
  </dependencies>
</project>
EOF
  log "fetching org.apache.beam:$artifact:$BEAM_VERSION and its dependencies (Maven Central)..."
  rm -rf "$dir/lib"
  # shellcheck disable=SC2046
  (cd "$dir" && mvn -B -q $(mvn_repo_opt) dependency:copy-dependencies -DoutputDirectory=lib -DincludeScope=runtime) \
    >"$dir/mvn.log" 2>&1 || die "download of org.apache.beam:$artifact:$BEAM_VERSION from Maven Central failed (see $dir/mvn.log)"
  touch "$dir/lib/.done"
}

# thin_jar JAR MAIN-CLASS ADD-OPENS CLASSPATH...: a jar holding only a manifest (Main-Class,
# Add-Opens, Class-Path relative to the jar's folder), for `java -jar`, which is how Beam
# starts a job server (--flink_job_server_jar / --spark_job_server_jar).
thin_jar() {
  local jar=$1 main=$2 opens=$3
  shift 3
  [ -f "$jar" ] && return 0
  need_cmd jar "the JDK's jar tool is needed once, to build the job server's jar (install a JDK 11 or 17)"
  python3 - "$main" "$opens" "$@" >"$jar.manifest" <<'EOF' || die "cannot write the manifest of $jar"
import sys
main, opens, *classpath = sys.argv[1:]
def wrap(line):  # manifest lines: at most 72 bytes, continuations start with one space
    out = [line[:70]]
    out += [" " + line[i:i + 69] for i in range(70, len(line), 69)]
    return out
lines = ["Main-Class: " + main]
if opens:
    lines += wrap("Add-Opens: " + opens)
lines += wrap("Class-Path: " + " ".join(classpath))
sys.stdout.write("\n".join(lines) + "\n")
EOF
  (cd "$(dirname "$jar")" && jar cfm "$jar.tmp" "$jar.manifest") >/dev/null 2>&1 && mv "$jar.tmp" "$jar" \
    || die "cannot build $jar (the JDK's jar tool failed)"
  rm -f "$jar.manifest"
}

pip_target() {  # pip_target DIR SPEC...: packages' files into DIR (no dependencies)
  local dir=$1
  shift
  [ -f "$dir/.done" ] && return 0
  log "fetching $* (PyPI; a one-time download and build of a few hundred MB)..."
  rm -rf "$dir" "$dir.log"
  mkdir -p "$(dirname "$dir")"
  "$BEAM_PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir" "$@" >"$dir.log" 2>&1 \
    || die "download of $* from PyPI failed (see $dir.log)"
  touch "$dir/.done"
}

FLINK_DIST=$CACHE/flink-$FLINK_VERSION
FLINK_HOME_DIR=$FLINK_DIST/pyflink
FLINK_JS=$CACHE/beam-$BEAM_VERSION-flink-$FLINK_MINOR-job-server
FLINK_JAR=$FLINK_JS/beam-runners-flink-$FLINK_MINOR-job-server-$BEAM_VERSION-l$LAYOUT.jar
SPARK_DIST=$CACHE/spark-$SPARK_VERSION
SPARK_HOME_DIR=$SPARK_DIST/pyspark
SPARK_JS=$CACHE/beam-$BEAM_VERSION-spark-3-job-server
SPARK_JAR=$SPARK_JS/beam-runners-spark-3-job-server-$BEAM_VERSION-l$LAYOUT.jar
PRISM_BIN=$CACHE/prism-v$BEAM_VERSION/bin/prism

# Java 17: the module opens spark-submit gives a driver (Spark's JavaModuleOptions).
SPARK_OPENS="java.base/java.lang java.base/java.lang.invoke java.base/java.lang.reflect java.base/java.io java.base/java.net java.base/java.nio java.base/java.util java.base/java.util.concurrent java.base/java.util.concurrent.atomic java.base/sun.nio.ch java.base/sun.nio.cs java.base/sun.security.action java.base/sun.util.calendar java.security.jgss/sun.security.krb5"

install_flink() {
  pip_target "$FLINK_DIST" "apache-flink==$FLINK_VERSION" "apache-flink-libraries==$FLINK_VERSION"
  install_jars "$FLINK_JS" "beam-runners-flink-$FLINK_MINOR"
  local cp
  cp=$(cd "$FLINK_JS" && ls lib/*.jar | sort)
  # shellcheck disable=SC2086
  thin_jar "$FLINK_JAR" org.apache.beam.runners.flink.FlinkJobServerDriver "" $cp
}

install_spark() {
  pip_target "$SPARK_DIST" "pyspark==$SPARK_VERSION"
  install_jars "$SPARK_JS" "beam-runners-spark-3"
  # The job server is the Spark driver. Classpath: Beam's Guava first (Spark's own
  # guava-14.0.1 lacks what Beam's GCS options call: NoSuchMethodError otherwise), then the
  # cluster's Spark jars, then Beam's jars of artifacts Spark does not ship.
  local cp have j base
  cp=$(cd "$SPARK_JS" && ls lib/guava-*.jar lib/failureaccess-*.jar)
  cp="$cp $(cd "$SPARK_JS" && ls "../spark-$SPARK_VERSION/pyspark/jars/"*.jar | sort)"
  have=" $(ls "$SPARK_HOME_DIR/jars" | sed -E 's/-[0-9][^-]*\.jar$//' | tr '\n' ' ') "
  for j in $(cd "$SPARK_JS" && ls lib/*.jar | sort); do
    base=$(basename "$j" | sed -E 's/-[0-9][^-]*\.jar$//')
    case $have in *" $base "*) ;; *) case $j in lib/guava-*|lib/failureaccess-*) ;; *) cp="$cp $j" ;; esac ;; esac
  done
  # shellcheck disable=SC2086
  thin_jar "$SPARK_JAR" org.apache.beam.runners.spark.SparkJobServerDriver "$SPARK_OPENS" $cp
}

install_prism() {
  [ -x "$PRISM_BIN" ] && return 0
  need_cmd go "Go is needed once, to build Beam's Prism runner (go install; e.g. from https://go.dev/dl)"
  log "building prism v$BEAM_VERSION (go install from the Go module proxy; a one-time download)..."
  mkdir -p "$CACHE/go" "$(dirname "$PRISM_BIN")"
  (cd "$CACHE" && GOPATH=$CACHE/go GOFLAGS=-modcacherw GOBIN=$(dirname "$PRISM_BIN") \
    go install "github.com/apache/beam/sdks/v2/go/cmd/prism@v$BEAM_VERSION") >"$CACHE/prism-v$BEAM_VERSION.log" 2>&1 \
    || die "go install github.com/apache/beam/sdks/v2/go/cmd/prism@v$BEAM_VERSION failed (see $CACHE/prism-v$BEAM_VERSION.log)"
}

start_worker_pool() {  # SDK workers for --environment_type EXTERNAL
  start worker-pool "$STATE/worker-pool.log" "$BEAM_PYTHON" -P -m pipeline.worker_pool --service_port="$1"
}

# --- engines --------------------------------------------------------------------------------
flink_conf() {
  mkdir -p "$STATE/conf" "$STATE/log" "$STATE/tmp"
  cp "$FLINK_HOME_DIR/conf/log4j-console.properties" "$STATE/conf/" || die "no Flink configuration in $FLINK_HOME_DIR/conf"
  cat >"$STATE/conf/config.yaml" <<EOF
# written by scripts/cluster.sh
env.java.opts.all: $(sed -n 's/^ *all: //p' "$FLINK_HOME_DIR/conf/config.yaml" | head -1)
jobmanager.bind-host: localhost
jobmanager.rpc.address: localhost
jobmanager.rpc.port: $FLINK_RPC_PORT
# 1 GB leaves the JobManager about 450 MB of heap: with 640 MB (64 MB of heap) it ran out
# while restarting the export's job (over a hundred tasks) after losing a TaskManager.
jobmanager.memory.process.size: 1024m
taskmanager.bind-host: localhost
taskmanager.host: localhost
taskmanager.numberOfTaskSlots: 2
cluster.evenly-spread-out-slots: true
taskmanager.memory.process.size: 1536m
taskmanager.memory.managed.size: 128m
# The export's batch job has over a hundred tasks in one pipelined region (every format,
# splits, shards): 64 MB of network buffers is too few, and 256 MB too few once a lost
# TaskManager leaves one to run both slots' tasks.
taskmanager.memory.network.min: 512m
taskmanager.memory.network.max: 512m
parallelism.default: 2
rest.address: localhost
rest.bind-address: localhost
rest.port: $FLINK_REST_PORT
io.tmp.dirs: $STATE/tmp
# Recovery (what a production cluster needs as well; see the README, Running on Flink): a
# batch job without checkpoints gets no restart strategy by default. A lost TaskManager is
# noticed within seconds, and the job restarts (up to 10 times, 2 s apart) on the slots
# left; the export's writes are idempotent, so a restarted job gives the same files.
heartbeat.interval: 2000
heartbeat.timeout: 8000
restart-strategy.type: fixed-delay
restart-strategy.fixed-delay.attempts: 10
restart-strategy.fixed-delay.delay: 2 s
jobmanager.execution.failover-strategy: region
EOF
}

up_flink() {
  need_java
  check_beam_python
  need_free "$FLINK_REST_PORT" "$FLINK_RPC_PORT" "$FLINK_WORKER_POOL_PORT"
  install_flink
  flink_conf
  local fenv=(env FLINK_HOME="$FLINK_HOME_DIR" FLINK_CONF_DIR="$STATE/conf" FLINK_LOG_DIR="$STATE/log" FLINK_PID_DIR="$STATE")
  start jobmanager "$STATE/jobmanager.log" "${fenv[@]}" "$FLINK_HOME_DIR/bin/jobmanager.sh" start-foreground
  start taskmanager-1 "$STATE/taskmanager-1.log" "${fenv[@]}" "$FLINK_HOME_DIR/bin/taskmanager.sh" start-foreground
  start taskmanager-2 "$STATE/taskmanager-2.log" "${fenv[@]}" "$FLINK_HOME_DIR/bin/taskmanager.sh" start-foreground
  start_worker_pool "$FLINK_WORKER_POOL_PORT"
  wait_for "the Flink cluster (2 TaskManagers)" json_check "http://localhost:$FLINK_REST_PORT/overview" 'd["taskmanagers"] >= 2'
  wait_for "the SDK worker pool" port_busy "$FLINK_WORKER_POOL_PORT"
  log "Flink $FLINK_VERSION up: web UI http://localhost:$FLINK_REST_PORT"
  echo "--runner FlinkRunner --flink_master localhost:$FLINK_REST_PORT --flink_version $FLINK_MINOR --flink_job_server_jar $FLINK_JAR --environment_type EXTERNAL --environment_config localhost:$FLINK_WORKER_POOL_PORT --parallelism 2"
}

up_spark() {
  need_java
  check_beam_python
  need_free "$SPARK_MASTER_PORT" "$SPARK_UI_PORT" $((SPARK_WORKER_UI_PORT + 1)) $((SPARK_WORKER_UI_PORT + 2)) "$SPARK_WORKER_POOL_PORT"
  install_spark
  mkdir -p "$STATE/work-1" "$STATE/work-2" "$STATE/tmp"
  local senv=(env SPARK_HOME="$SPARK_HOME_DIR" SPARK_DAEMON_MEMORY=256m SPARK_LOG_DIR="$STATE" SPARK_LOCAL_IP=127.0.0.1
              SPARK_LOCAL_DIRS="$STATE/tmp" SPARK_CONF_DIR="$STATE")
  start master "$STATE/master.log" "${senv[@]}" "$SPARK_HOME_DIR/bin/spark-class" org.apache.spark.deploy.master.Master \
    --host 127.0.0.1 --port "$SPARK_MASTER_PORT" --webui-port "$SPARK_UI_PORT"
  wait_for "the Spark master" port_busy "$SPARK_MASTER_PORT"
  local i
  for i in 1 2; do
    start "worker-$i" "$STATE/worker-$i.log" "${senv[@]}" "$SPARK_HOME_DIR/bin/spark-class" org.apache.spark.deploy.worker.Worker \
      --host 127.0.0.1 --cores 1 --memory 1g --webui-port $((SPARK_WORKER_UI_PORT + i)) --work-dir "$STATE/work-$i" \
      "spark://127.0.0.1:$SPARK_MASTER_PORT"
  done
  start_worker_pool "$SPARK_WORKER_POOL_PORT"
  wait_for "the Spark cluster (2 workers)" json_check "http://localhost:$SPARK_UI_PORT/json/" 'd["aliveworkers"] >= 2'
  wait_for "the SDK worker pool" port_busy "$SPARK_WORKER_POOL_PORT"
  log "Spark $SPARK_VERSION up: master UI http://localhost:$SPARK_UI_PORT"
  # Executors: Beam's Guava before Spark's (as on the driver); one executor of 512 MB per worker.
  local xcp
  xcp=$(ls "$SPARK_JS"/lib/guava-*.jar "$SPARK_JS"/lib/failureaccess-*.jar | paste -sd:)
  echo "--runner SparkRunner --spark_master_url spark://127.0.0.1:$SPARK_MASTER_PORT --spark_version 3 --spark_job_server_jar $SPARK_JAR --job_server_jvm_properties=-Dspark.executor.extraClassPath=$xcp --job_server_jvm_properties=-Dspark.executor.memory=512m --job_server_jvm_properties=-Dspark.cores.max=2 --job_server_jvm_properties=-Dspark.local.dir=$STATE/tmp --job_server_jvm_properties=-Dspark.driver.host=127.0.0.1 --environment_type EXTERNAL --environment_config localhost:$SPARK_WORKER_POOL_PORT"
}

up_prism() {
  need_free "$PRISM_JOB_PORT" $((PRISM_JOB_PORT + 1))
  install_prism
  start prism "$STATE/prism.log" "$PRISM_BIN" --job_port="$PRISM_JOB_PORT" --web_port=$((PRISM_JOB_PORT + 1)) \
    --serve_http=false --log_level=warn
  wait_for "prism" port_busy "$PRISM_JOB_PORT"
  log "prism v$BEAM_VERSION up: job server localhost:$PRISM_JOB_PORT"
  echo "--runner PrismRunner --job_endpoint localhost:$PRISM_JOB_PORT --environment_type LOOPBACK"
}

scratch_clean() {  # a Spark application copies ~120 MB of jars into each worker's work dir
  rm -rf "$STATE"/work-* "$STATE/tmp" "$STATE/log"
}

case $ACTION in
  up)
    mkdir -p "$STATE" || die "cannot create $STATE"
    if [ -s "$PIDS" ]; then
      while read -r n p t; do ours "$p" "$t" && die "$ENGINE is already up (pid $p): scripts/cluster.sh $ENGINE down"; done <"$PIDS"
      rm -f "$PIDS"
    fi
    : >"$PIDS"
    scratch_clean
    rm -f "$STATE"/*.log
    # Every process starts in the state folder: a Python process puts its working folder
    # first on sys.path, where a checkout of this project (or any `transforms` package)
    # would shadow the installed one.
    cd "$STATE" || die "cannot enter $STATE"
    "up_$ENGINE"
    ;;
  down)
    stop_all
    scratch_clean
    log "$ENGINE down"
    ;;
  status)
    [ -s "$PIDS" ] || { echo "$ENGINE down"; exit 1; }
    while read -r n p t; do
      if ours "$p" "$t"; then echo "$n $p running"; else echo "$n $p gone"; fi
    done <"$PIDS"
    ;;
esac
