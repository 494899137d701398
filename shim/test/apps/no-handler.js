// Exports no fetch and no routes.
export default { name: "nothing here" };
export const answer = 42;
