//! Group settings: UpdateGroup with update mask and etag, renames, the R06 permission matrix,
//! the tenant's group limit across plan changes (R03), message-room features (R08), feature
//! data and usage (R09) and the mailing list (R10).

mod etag;
mod feature_data;
mod features;
mod grace;
mod limits;
mod mailing_list;
mod mask;
mod matrix;
mod recipients;
mod rename;
