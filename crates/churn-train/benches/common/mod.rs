//! Shared by the benches: Telco customers resampled with noise, so that any number of rows can be
//! made from the shipped file.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Writes `rows` Telco customers drawn with replacement, with noise on tenure and charges.
pub fn resample_telco(rows: usize, out: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(telco_csv())?;
    let mut lines = text.lines();
    let header = lines
        .next()
        .ok_or_else(|| anyhow::anyhow!("empty Telco file"))?;
    let names: Vec<&str> = header.split(',').collect();
    let column = |name: &str| names.iter().position(|&n| n == name);
    let (tenure, monthly, total, id) = (
        column("tenure"),
        column("MonthlyCharges"),
        column("TotalCharges"),
        column("customerID"),
    );
    let records: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    writeln!(file, "{header}")?;
    for index in 0..rows {
        let mut record: Vec<String> = records[rng.gen_range(0..records.len())]
            .iter()
            .map(|cell| cell.to_string())
            .collect();
        let mut jitter = |position: Option<usize>, scale: f64, rng: &mut ChaCha8Rng| {
            if let Some(position) = position
                && let Ok(value) = record[position].trim().parse::<f64>()
            {
                let noisy = value * (1.0 + scale * (rng.r#gen::<f64>() * 2.0 - 1.0));
                record[position] = format!("{noisy:.2}");
            }
        };
        jitter(monthly, 0.05, &mut rng);
        jitter(total, 0.05, &mut rng);
        if let Some(position) = tenure
            && let Ok(value) = record[position].parse::<i64>()
        {
            record[position] = (value + rng.gen_range(-2..=2)).max(0).to_string();
        }
        if let Some(position) = id {
            record[position] = format!("{}-{index}", record[position]);
        }
        writeln!(file, "{}", record.join(","))?;
    }
    file.flush()?;
    Ok(())
}

pub fn telco_csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../notebooks-data/telco/Telco-Customer-Churn.csv")
}
