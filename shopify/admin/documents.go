package admin

// Every GraphQL document the client sends. Each is a named operation (the name keys the cost
// estimate in Budget) and TestDocumentsValidate checks all of them against the embedded schema.

// Product asks for small first pages: a query's cost grows with "first",
// and most products have a handful of images and variants. Larger ones are
// paged with ProductMedia and ProductVariants.
const docProduct = `query Product($id: ID!) {
  product(id: $id) {
    id title productType vendor status tags createdAt updatedAt
    media(first: 20) {
      nodes { id alt status mediaContentType ... on MediaImage { mimeType image { url } } }
      pageInfo { hasNextPage endCursor }
    }
    variants(first: 20) {
      nodes { id media(first: 1) { nodes { id } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}`

const docProductMedia = `query ProductMedia($id: ID!, $after: String) {
  product(id: $id) {
    media(first: 50, after: $after) {
      nodes { id alt status mediaContentType ... on MediaImage { mimeType image { url } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}`

const docProductVariants = `query ProductVariants($id: ID!, $after: String) {
  product(id: $id) {
    variants(first: 50, after: $after) {
      nodes { id media(first: 1) { nodes { id } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}`

// ProductGallery reads the order of a product's gallery, ids only (one
// point a media; 250 is Shopify's maximum of media per product, so one page
// holds them all), with the details of only the media a step names.
const docProductGallery = `query ProductGallery($id: ID!, $ids: [ID!]!) {
  product(id: $id) {
    id title
    media(first: 250) {
      nodes { id }
      pageInfo { hasNextPage }
    }
  }
  nodes(ids: $ids) {
    id
    ... on Media { alt status mediaContentType }
    ... on MediaImage { mimeType image { url } }
  }
}`

// ProductGalleryOrder is ProductGallery without the named media's images:
// their alt text and status only, a point less each, for a step that
// needs neither their file name nor their URL. It is written out whole,
// as every document is, so TestEveryDocumentIsListed finds it in the
// source and the schema test validates exactly what is sent.
const docProductGalleryOrder = `query ProductGalleryOrder($id: ID!, $ids: [ID!]!) {
  product(id: $id) {
    id title
    media(first: 250) {
      nodes { id }
      pageInfo { hasNextPage }
    }
  }
  nodes(ids: $ids) {
    id
    ... on Media { alt status mediaContentType }
  }
}`

// ProductMediaByID reads only the named media of a product (Shopify's
// media filter by id: "id:1 OR id:2"), whatever the size of its gallery.
const docProductMediaByID = `query ProductMediaByID($id: ID!, $query: String!, $first: Int!) {
  product(id: $id) {
    id title
    media(first: $first, query: $query) {
      nodes { id alt status mediaContentType ... on MediaImage { mimeType image { url } } }
    }
  }
}`

// MediaByID reads media by id, whatever product they are on.
const docMediaByID = `query MediaByID($ids: [ID!]!) {
  nodes(ids: $ids) {
    id
    ... on Media { alt status mediaContentType }
    ... on MediaImage { mimeType image { url } }
  }
}`

const docProductsUpdatedSince = `query ProductsUpdatedSince($query: String!, $after: String) {
  products(first: 50, after: $after, query: $query, sortKey: UPDATED_AT) {
    nodes { id title createdAt updatedAt }
    pageInfo { hasNextPage endCursor }
  }
}`

const docStagedUploadsCreate = `mutation StagedUploadsCreate($input: [StagedUploadInput!]!) {
  stagedUploadsCreate(input: $input) {
    stagedTargets { url resourceUrl parameters { name value } }
    userErrors { field message }
  }
}`

const docFileCreate = `mutation FileCreate($files: [FileCreateInput!]!) {
  fileCreate(files: $files) {
    files { id fileStatus alt }
    userErrors { field message code }
  }
}`

const docFileUpdate = `mutation FileUpdate($files: [FileUpdateInput!]!) {
  fileUpdate(files: $files) {
    files { id fileStatus alt }
    userErrors { field message code }
  }
}`

const docFileDelete = `mutation FileDelete($fileIds: [ID!]!) {
  fileDelete(fileIds: $fileIds) {
    deletedFileIds
    userErrors { field message code }
  }
}`

const docFindFile = `query FindFile($query: String!) {
  files(first: 10, query: $query) {
    nodes {
      id alt fileStatus
      ... on MediaImage { image { url } }
      ... on GenericFile { url }
    }
  }
}`

const docFileStatus = `query FileStatus($ids: [ID!]!) {
  nodes(ids: $ids) {
    id
    ... on File { alt fileStatus }
    ... on MediaImage { image { url } }
    ... on GenericFile { url }
  }
}`

const docMediaStatus = `query MediaStatus($ids: [ID!]!) {
  nodes(ids: $ids) {
    id
    ... on Media { status }
  }
}`

// MediaReady is MediaStatus with the image's URL, which Shopify gives (and
// charges a point for) only once the image is READY.
const docMediaReady = `query MediaReady($ids: [ID!]!) {
  nodes(ids: $ids) {
    id
    ... on Media { status }
    ... on MediaImage { image { url } }
  }
}`

const docProductReorderMedia = `mutation ProductReorderMedia($id: ID!, $moves: [MoveInput!]!) {
  productReorderMedia(id: $id, moves: $moves) {
    job { id done }
    mediaUserErrors { field message code }
  }
}`

const docJob = `query Job($id: ID!) {
  job(id: $id) { id done }
}`

const docVariantAppendMedia = `mutation ProductVariantAppendMedia($productId: ID!, $variantMedia: [ProductVariantAppendMediaInput!]!) {
  productVariantAppendMedia(productId: $productId, variantMedia: $variantMedia) {
    productVariants { id }
    userErrors { field message code }
  }
}`

const docVariantDetachMedia = `mutation ProductVariantDetachMedia($productId: ID!, $variantMedia: [ProductVariantDetachMediaInput!]!) {
  productVariantDetachMedia(productId: $productId, variantMedia: $variantMedia) {
    productVariants { id }
    userErrors { field message code }
  }
}`

// Documents returns every GraphQL document this package sends, keyed by operation name.
func Documents() map[string]string {
	return map[string]string{
		"Product":                   docProduct,
		"ProductMedia":              docProductMedia,
		"ProductVariants":           docProductVariants,
		"ProductGallery":            docProductGallery,
		"ProductGalleryOrder":       docProductGalleryOrder,
		"MediaByID":                 docMediaByID,
		"ProductMediaByID":          docProductMediaByID,
		"ProductsUpdatedSince":      docProductsUpdatedSince,
		"StagedUploadsCreate":       docStagedUploadsCreate,
		"FileCreate":                docFileCreate,
		"FileUpdate":                docFileUpdate,
		"FindFile":                  docFindFile,
		"FileStatus":                docFileStatus,
		"MediaStatus":               docMediaStatus,
		"MediaReady":                docMediaReady,
		"FileDelete":                docFileDelete,
		"ProductReorderMedia":       docProductReorderMedia,
		"Job":                       docJob,
		"ProductVariantAppendMedia": docVariantAppendMedia,
		"ProductVariantDetachMedia": docVariantDetachMedia,
	}
}
