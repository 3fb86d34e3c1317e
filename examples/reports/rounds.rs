//! Reports that run in rounds: on a shared, noisy machine a ratio is taken within one round, where
//! both sides ran under the same load, and the rounds are summed up by their median.

/// The middle value (the mean of the two middle ones for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() % 2 {
        0 => (values[mid - 1] + values[mid]) / 2.0,
        _ => values[mid],
    }
}
