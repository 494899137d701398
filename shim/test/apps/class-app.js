// An app object whose fetch needs `this` (as with a Hono instance).
class MiniFramework {
  constructor() {
    this.greeting = "hi from a class";
  }
  fetch(req) {
    return new Response(this.greeting);
  }
  onTerminate() {
    console.log("class app terminating");
  }
}
export default new MiniFramework();
