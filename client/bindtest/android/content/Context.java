// A stand-in for Android's Context, so that gomobile's go/Seq.java compiles on a desktop JDK
// (its setContext is never called there).
package android.content;

public class Context {}
