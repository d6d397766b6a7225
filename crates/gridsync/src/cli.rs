//! The command line: clap structures only. They are turned into calls on the library crates
//! in `commands/`; nothing here does work.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Examples:
  gridsync init --node-id vol-0042 --street panhuo
  gridsync plan import street-plan.csv
  gridsync visit add --household h-0001 --outcome contacted --people 2 --flag elderly-living-alone --need medicine:insulin
  gridsync visit list --building bldg-12
  gridsync deliver --household h-0001 --item food-pack --status delivered
  gridsync sweep record --building bldg-12 --round 3 --unit u1 --unit u2 --reached 15 --not-home 2 --refused 1
  gridsync show building bldg-12
  gridsync export --format csv --out visits.csv
  gridsync demo
  gridsync office init --street panhuo --advertise 192.168.1.10:7700
  gridsync enroll --name vol-0042 --role volunteer --scope write:panhuo/grid-017 --out vol-0042.invite
  gridsync join vol-0042.invite            # asks for the field app's PIN
  gridsync run --ui --peer 192.168.1.10:7700  # field app on http://127.0.0.1:7878/
  gridsync run --http 192.168.1.10:7780     # at the office: dashboard on https://192.168.1.10:7780/
  gridsync office ca-cert --out street-ca.pem  # for the office PCs to trust
  gridsync status
  gridsync backup --out /var/backups/gridsync-office.db

Data lives in --data DIR (or $GRIDSYNC_DATA), by default in the per-user data directory.
Logs go to stderr; set the level with -v / -vv or RUST_LOG.";

/// gridsync: offline-first field records for a street's door-to-door volunteers.
///
/// Every command works with no network: records are saved durably on this device and merge
/// with everyone else's when devices meet.
#[derive(Debug, Parser)]
#[command(name = "gridsync", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory holding this device's store.
    #[arg(long, global = true, env = "GRIDSYNC_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create this device's store and give it a node id.
    Init(InitArgs),
    /// The street plan: communities, grids, buildings, units, households.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Household visits.
    #[command(subcommand)]
    Visit(VisitCommand),
    /// Set the status of a delivery item for a household (a new event; history is kept).
    Deliver(DeliverArgs),
    /// Building sweep results.
    #[command(subcommand)]
    Sweep(SweepCommand),
    /// Show the state of a place.
    #[command(subcommand)]
    Show(ShowCommand),
    /// Export every record (visits, deliveries, sweeps, corrections), streaming, as CSV or JSON lines.
    Export(ExportArgs),
    /// Correct an earlier record: a new record that refers to it; the original stays readable.
    Correct(CorrectArgs),
    /// A guided walkthrough on a generated street, in a temporary directory.
    Demo(DemoArgs),
    /// The street office: create the street's certificate authority and the office's identity.
    #[command(subcommand)]
    Office(OfficeCommand),
    /// At the office: issue a device identity and write it as an invite file.
    Enroll(EnrollArgs),
    /// On a device: install an invite file (creates the store if needed) and choose the PIN
    /// that opens the field app (asked on a terminal, or read from $GRIDSYNC_PIN).
    Join {
        /// The invite file written by `gridsync enroll`.
        file: PathBuf,
    },
    /// The PIN that opens this device's field app (`gridsync run --ui`).
    #[command(subcommand)]
    Pin(PinCommand),
    /// At the office: revoke a device. The signed revocation travels to every node.
    Revoke {
        /// The node id to revoke.
        node: String,
    },
    /// Run this device as a sync node until SIGINT/SIGTERM.
    Run(RunArgs),
    /// Show the running node's peers and documents (or the stored documents if it is not running).
    Status,
    /// Write a consistent copy of this device's store to a file (safe while the node runs).
    Backup {
        /// The backup file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Install a backup as the store of --data DIR (which must not hold a store yet).
    Restore {
        /// A file written by `gridsync backup`.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum PinCommand {
    /// Choose a new PIN (4 to 12 digits), asked twice on a terminal, or read from
    /// $GRIDSYNC_PIN or one line of stdin. Stored as a slow (Argon2id) hash; a running node
    /// uses it after a restart.
    Set,
}

#[derive(Debug, Subcommand)]
pub enum OfficeCommand {
    /// Create the street CA and this office node's identity in --data DIR.
    Init {
        /// The street's name (a path segment: lower-case letters, digits, '-', '_').
        #[arg(long)]
        street: String,
        /// The office node's id.
        #[arg(long, default_value = "office")]
        node_id: String,
        /// Address (host:port) devices should dial to reach the office; written into invites
        /// (repeatable).
        #[arg(long = "advertise", value_name = "ADDR")]
        advertise: Vec<String>,
    },
    /// Print the street CA's certificate (PEM), for the office's PCs and phones to trust:
    /// the dashboard served off loopback is HTTPS with a certificate the CA issues (see
    /// deploy/RUNBOOK.md, "Opening the dashboard on the office LAN").
    CaCert {
        /// Write it to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Sign every official out of the dashboard (a lost phone, a token that leaked): the key
    /// that signs session cookies is replaced. A running office applies it within seconds.
    EndSessions,
}

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The new device's node id.
    #[arg(long)]
    pub name: String,
    /// volunteer, captain, relay or office.
    #[arg(long)]
    pub role: String,
    /// A scope grant ACCESS:PREFIX (repeatable), e.g. write:panhuo/grid-017 or carry:panhuo.
    /// A bare prefix means write. Read and carry access to the street plan and the
    /// revocation list are always added.
    #[arg(long = "scope", value_name = "ACCESS:PREFIX", required = true)]
    pub scopes: Vec<String>,
    /// Days until the identity expires.
    #[arg(long, default_value_t = 30)]
    pub expires: u32,
    /// Where to write the invite file.
    #[arg(long)]
    pub out: PathBuf,
    /// Office address for the device to dial (repeatable); defaults to the office's --advertise.
    #[arg(long = "office-addr", value_name = "ADDR")]
    pub office_addrs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML config file (listen, peers, mdns, backoff_initial_ms, backoff_max_ms, http,
    /// max_documents, max_store_bytes); see deploy/config/ for commented examples.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// UDP address to listen on (overrides the config file).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// A peer address to keep connected to (repeatable, added to the config's peers).
    #[arg(long = "peer", value_name = "ADDR")]
    pub peers: Vec<std::net::SocketAddr>,
    /// Do not advertise or discover peers on the LAN with mDNS.
    #[arg(long)]
    pub no_mdns: bool,
    /// Office only: serve the dashboard and the HTTP API (/api/v1, /metrics, /healthz) on this
    /// address, e.g. 127.0.0.1:7780. Access needs the office token, printed on first use.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// Allow --http on a public address (0.0.0.0, a public IP). The dashboard shows
    /// personal data: think twice.
    #[arg(long)]
    pub http_public: bool,
    /// Serve the dashboard over HTTPS on loopback too. Off loopback it is always HTTPS, with
    /// a certificate the street CA issues for the address (`gridsync office ca-cert` prints
    /// the CA for browsers to trust), and plain HTTP there gets a redirect.
    #[arg(long)]
    pub https: bool,
    /// Serve the field app (phone pages and local JSON API, in Chinese and English) on this
    /// address; `--ui` alone serves it on 127.0.0.1:7878, this device only. Open it in the
    /// phone's browser and sign in with the PIN chosen at `join`.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:7878")]
    pub ui: Option<std::net::SocketAddr>,
    /// Do not serve the field app, whatever the config file says.
    #[arg(long, conflicts_with = "ui")]
    pub no_ui: bool,
    /// Allow --ui on an address outside loopback and private networks.
    #[arg(long)]
    pub ui_public: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// This device's node id (lower-case letters, digits, '-', '_').
    #[arg(long)]
    pub node_id: String,
    /// The street this device works for.
    #[arg(long, default_value = "panhuo")]
    pub street: String,
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// At the office: set the street's time zone (rounds start at its midnight; every page
    /// shows its times), e.g. `+08:00` (the default while none is set), `-05:30`, `+8`. It
    /// travels with the plan to every device. Without OFFSET, shows the one in force.
    TimeZone {
        /// Offset from UTC: +HH:MM, -HH:MM or +H.
        #[arg(allow_hyphen_values = true)]
        offset: Option<String>,
    },
    /// Import a street plan CSV. The whole file is checked first: one bad row and nothing is
    /// imported. Columns are listed in `gridsync plan columns`.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// Print the CSV columns `plan import` expects.
    Columns,
    /// Summarize the plan held on this device.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum VisitCommand {
    /// Log a household visit.
    Add(VisitAddArgs),
    /// List visits (corrections applied), optionally for one building or household.
    List {
        #[arg(long)]
        building: Option<String>,
        #[arg(long)]
        household: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct VisitAddArgs {
    /// Household id from the street plan.
    #[arg(long)]
    pub household: String,
    /// What happened at the door: contacted, not-home, refused, moved-out or vacant.
    #[arg(long)]
    pub outcome: String,
    /// Number of people seen.
    #[arg(long, default_value_t = 0)]
    pub people: u16,
    /// Special-needs flag (repeatable): elderly-living-alone, child, pregnant, disability, chronic-illness.
    #[arg(long = "flag", value_name = "FLAG")]
    pub flags: Vec<String>,
    /// A need (repeatable), optionally with detail, e.g. medicine:insulin. Needs: medicine,
    /// medical-trip, food, water, baby-supplies, hygiene, counselling, other.
    #[arg(long = "need", value_name = "NEED[:DETAIL]")]
    pub needs: Vec<String>,
    /// Free-text note (bounded).
    #[arg(long)]
    pub note: Option<String>,
    /// Volunteer name recorded on the visit (defaults to this device's node id).
    #[arg(long)]
    pub volunteer: Option<String>,
    /// Time of the visit, RFC 3339 (defaults to now).
    #[arg(long)]
    pub at: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeliverArgs {
    #[arg(long)]
    pub household: String,
    /// The item: food-pack, medicine, water, baby-supplies, hygiene-kit, test-kit or other.
    #[arg(long)]
    pub item: String,
    /// New status: requested, out-for-delivery, delivered, failed or cancelled.
    #[arg(long)]
    pub status: String,
    #[arg(long)]
    pub note: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SweepCommand {
    /// Record one building's sweep result for a round.
    Record(SweepRecordArgs),
}

#[derive(Debug, Args)]
pub struct SweepRecordArgs {
    #[arg(long)]
    pub building: String,
    #[arg(long)]
    pub round: u32,
    /// A unit (stairwell) covered, by plan unit id (repeatable).
    #[arg(long = "unit", value_name = "UNIT")]
    pub units: Vec<String>,
    #[arg(long)]
    pub reached: u32,
    #[arg(long)]
    pub not_home: u32,
    #[arg(long)]
    pub refused: u32,
    /// An issue found (repeatable).
    #[arg(long = "issue", value_name = "TEXT")]
    pub issues: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ShowCommand {
    /// One building: households, latest visits, needs, deliveries, sweeps.
    Building {
        /// Building id from the street plan.
        id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value = "csv")]
    pub format: ExportFormat,
    /// Write to this file instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CorrectArgs {
    /// Building holding the record.
    #[arg(long)]
    pub building: String,
    /// Id of the record being corrected.
    #[arg(long)]
    pub record: String,
    /// Why the correction is made.
    #[arg(long)]
    pub reason: String,
    /// Replacement outcome for a visit (omit to retract the record).
    #[arg(long)]
    pub outcome: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's data directory instead of deleting it.
    #[arg(long)]
    pub keep: bool,
    /// At the end, keep the street running and serve the office dashboard on this address
    /// (`--dashboard` alone: 127.0.0.1:7780) until ctrl-c: open the printed address and sign
    /// in with the printed token to look at the street the demo made.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:7780")]
    pub dashboard: Option<SocketAddr>,
}
