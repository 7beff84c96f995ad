/** The client's web gateway and dashboard. docs/web-api.md. */
export {
  API_TOKEN_FILE,
  type ClientGateway,
  createGatewayHandler,
  type Gateway,
  type GatewayOptions,
  loadApiToken,
  type OperatorGateway,
  REFRESH_HISTORY_FILE,
  serveGateway,
  startClientGateway,
  startOperatorGateway,
  WEB_TMP_DIR,
} from "./gateway.ts";
export { type ApiContext, HttpError, parseRange, type SharesReport } from "./api.ts";
export {
  type HistoryEntry,
  type ProbeInfo,
  RefreshHistory,
  ServerProbe,
  type StatusReport,
  statusReport,
  type StatusServer,
} from "./status.ts";
