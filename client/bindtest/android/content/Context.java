// A stand-in for Android's Context, so that gomobile's go/Seq.java compiles on a desktop JDK
// (make bindings compiles the Java side of the bindings; it does not run it).
package android.content;

public class Context {}
