//! The event tables' definitions: each table's name and its columns with their types, in file
//! order. `churn generate` writes tables with these names and columns, and the as-of profiles
//! read them back with these types, so a column is named in one place only.
//!
//! Columns that are also features (`segment`, `plan`, `monthly_charge` …) take their names from
//! `churn_core::experience`, beside the sentences reasons say them in.

use churn_core::experience::{
    ACQUISITION_CHANNEL, AUTOPAY, CONTRACT, MONTHLY_CHARGE, PLAN, REGION, SEGMENT,
};
use polars::prelude::{DataType, TimeUnit};

/// The customer id column of every table.
pub const CUSTOMER_ID: &str = "customer_id";

/// What a column holds, and so how it is written and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Text, such as an id or a category.
    Text,
    /// True or false.
    Boolean,
    /// A whole number; written as an integer, read as a float like every other number.
    Integer,
    /// A number with a fractional part.
    Float,
    /// A calendar day.
    Date,
    /// An instant, in milliseconds.
    Time,
}

impl ColumnKind {
    /// Returns the type a column of this kind is read as: CSV files are parsed with it, and
    /// Parquet columns are cast to it, so dates and times of any unit work.
    pub fn read_type(self) -> DataType {
        match self {
            ColumnKind::Text => DataType::String,
            ColumnKind::Boolean => DataType::Boolean,
            ColumnKind::Integer | ColumnKind::Float => DataType::Float64,
            ColumnKind::Date => DataType::Date,
            ColumnKind::Time => DataType::Datetime(TimeUnit::Milliseconds, None),
        }
    }
}

/// One column of an event table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventColumn {
    /// The column's name in the file.
    pub name: &'static str,
    /// What the column holds.
    pub kind: ColumnKind,
}

const fn column(name: &'static str, kind: ColumnKind) -> EventColumn {
    EventColumn { name, kind }
}

/// One event table: its name (the file's stem) and its columns in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTable {
    /// The table's name: its file is `NAME.parquet` or `NAME.csv`.
    pub name: &'static str,
    /// The columns, in the order they are written.
    pub columns: &'static [EventColumn],
}

impl EventTable {
    /// Returns the column with this name, if the table has one.
    pub fn column(&self, name: &str) -> Option<&EventColumn> {
        self.columns.iter().find(|column| column.name == name)
    }
}

/// Who the customers are, one row each.
pub mod customers {
    use super::ColumnKind::{Date, Text};
    use super::*;

    /// The day the customer signed up.
    pub const SIGNUP_DATE: &str = "signup_date";

    /// The `customers` table.
    pub const TABLE: EventTable = EventTable {
        name: "customers",
        columns: &[
            column(CUSTOMER_ID, Text),
            column(SIGNUP_DATE, Date),
            column(SEGMENT, Text),
            column(REGION, Text),
            column(ACQUISITION_CHANNEL, Text),
        ],
    };
}

/// Subscriptions, one row per plan a customer held; an open one has no end.
pub mod subscriptions {
    use super::ColumnKind::{Boolean, Date, Float, Text};
    use super::*;

    /// The subscription's first day.
    pub const START_DATE: &str = "start_date";
    /// The day the subscription ended, null while it is open.
    pub const END_DATE: &str = "end_date";

    /// The `subscriptions` table.
    pub const TABLE: EventTable = EventTable {
        name: "subscriptions",
        columns: &[
            column(CUSTOMER_ID, Text),
            column(PLAN, Text),
            column(CONTRACT, Text),
            column(MONTHLY_CHARGE, Float),
            column(AUTOPAY, Boolean),
            column(START_DATE, Date),
            column(END_DATE, Date),
        ],
    };
}

/// Survey invitations and their answers (null when never answered).
pub mod surveys {
    use super::ColumnKind::{Integer, Text, Time};
    use super::*;

    /// When the invitation was sent.
    pub const SENT_AT: &str = "sent_at";
    /// When it was answered, null when it was not.
    pub const ANSWERED_AT: &str = "answered_at";
    /// `NPS`, `CSAT` or `CES`.
    pub const KIND: &str = "kind";
    /// What the survey asked about (`onboarding`, `support`, `renewal` …).
    pub const TOUCHPOINT: &str = "touchpoint";
    /// The answer's score, null when unanswered.
    pub const SCORE: &str = "score";

    /// The `surveys` table.
    pub const TABLE: EventTable = EventTable {
        name: "surveys",
        columns: &[
            column(CUSTOMER_ID, Text),
            column(SENT_AT, Time),
            column(ANSWERED_AT, Time),
            column(KIND, Text),
            column(TOUCHPOINT, Text),
            column(SCORE, Integer),
        ],
    };
}

/// Support tickets, with when each was answered, closed and reopened.
pub mod tickets {
    use super::ColumnKind::{Boolean, Text, Time};
    use super::*;

    /// When the ticket was opened.
    pub const OPENED_AT: &str = "opened_at";
    /// When support first answered, null while waiting.
    pub const FIRST_RESPONSE_AT: &str = "first_response_at";
    /// When the ticket was first closed, null while open.
    pub const CLOSED_AT: &str = "closed_at";
    /// When the ticket was reopened, null when it was not.
    pub const REOPENED_AT: &str = "reopened_at";
    /// How the customer got in touch (`phone`, `chat`, `email`, `social`).
    pub const CHANNEL: &str = "channel";
    /// What the ticket is about (`technical`, `billing` …).
    pub const CATEGORY: &str = "category";
    /// Whether the customer complained.
    pub const COMPLAINT: &str = "complaint";

    /// The `tickets` table.
    pub const TABLE: EventTable = EventTable {
        name: "tickets",
        columns: &[
            column(CUSTOMER_ID, Text),
            column(OPENED_AT, Time),
            column(FIRST_RESPONSE_AT, Time),
            column(CLOSED_AT, Time),
            column(REOPENED_AT, Time),
            column(CHANNEL, Text),
            column(CATEGORY, Text),
            column(COMPLAINT, Boolean),
        ],
    };
}

/// Product usage, one row per customer and day of use.
pub mod usage {
    use super::ColumnKind::{Date, Float, Integer, Text};
    use super::*;

    /// The day of use.
    pub const DAY: &str = "day";
    /// Sessions that day.
    pub const SESSIONS: &str = "sessions";
    /// Minutes of use that day.
    pub const MINUTES: &str = "minutes";

    /// The `usage` table.
    pub const TABLE: EventTable = EventTable {
        name: "usage",
        columns: &[
            column(CUSTOMER_ID, Text),
            column(DAY, Date),
            column(SESSIONS, Integer),
            column(MINUTES, Float),
        ],
    };
}

/// Charges, failed payments and refunds.
pub mod billing {
    use super::ColumnKind::{Float, Text, Time};
    use super::*;

    /// When the charge or refund was made.
    pub const BILLED_AT: &str = "billed_at";
    /// Its amount.
    pub const AMOUNT: &str = "amount";
    /// `paid`, `failed` or `refunded`.
    pub const STATUS: &str = "status";

    /// The `billing` table.
    pub const TABLE: EventTable = EventTable {
        name: "billing",
        columns: &[
            column(CUSTOMER_ID, Text),
            column(BILLED_AT, Time),
            column(AMOUNT, Float),
            column(STATUS, Text),
        ],
    };
}

/// Every event table, in the order `churn generate` writes them.
pub const EVENT_TABLES: [EventTable; 6] = [
    customers::TABLE,
    subscriptions::TABLE,
    surveys::TABLE,
    tickets::TABLE,
    usage::TABLE,
    billing::TABLE,
];

/// The event tables' names, in [`EVENT_TABLES`] order.
pub const TABLES: [&str; 6] = [
    customers::TABLE.name,
    subscriptions::TABLE.name,
    surveys::TABLE.name,
    tickets::TABLE.name,
    usage::TABLE.name,
    billing::TABLE.name,
];

/// Returns the definition of the table with this name.
pub fn event_table(name: &str) -> Option<&'static EventTable> {
    EVENT_TABLES.iter().find(|table| table.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_starts_with_the_customer_id_and_names_each_column_once() {
        for table in EVENT_TABLES {
            assert_eq!(table.columns[0].name, CUSTOMER_ID, "{}", table.name);
            let mut names: Vec<&str> = table.columns.iter().map(|column| column.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), table.columns.len(), "{}", table.name);
        }
        assert_eq!(event_table("usage"), Some(&usage::TABLE));
        assert_eq!(event_table("nope"), None);
    }
}
